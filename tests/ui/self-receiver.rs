use forkmap::remote;

struct Power {
    y: u32,
}

impl Power {
    #[remote]
    fn factory(&self) -> impl Fn(u64) -> u64 {
        let y = self.y;
        move |x| x.pow(y)
    }
}

fn main() {}
