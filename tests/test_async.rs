//! `AsyncResult` as a `Future`: awaited under tokio's current-thread runtime,
//! from a spawned task, and woken when the task ends (not only when polled
//! again for some other reason).

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use forkmap::{AsyncResult, Error, Pool, ProcessPool, SerialPool, ThreadPool};

fn pow(x: u64, y: u32) -> u64 {
    x.pow(y)
}

fn square(x: u64) -> u64 {
    x * x
}

fn slow_square(x: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(100));
    x * x
}

fn slower_square(x: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(300));
    x * x
}

fn panics(x: u64) -> u64 {
    panic!("no {x}");
}

/// What `tokio::spawn` and any executor need of the handle.
fn assert_spawnable_future<T>(_: &AsyncResult<T>)
where
    AsyncResult<T>: Future<Output = Result<T, Error>> + Send + Unpin + 'static,
{
}

/// Runs a test body, failing it if it is still waiting after 10 s, so that a
/// handle that is never woken fails the test instead of hanging it.
/// `tokio::time::timeout` polls the body once more when its timer fires, and
/// a never-woken handle may be ready by then: the elapsed time tells.
async fn within_10_seconds(body: impl Future<Output = ()>) {
    let started = Instant::now();
    let finished = tokio::time::timeout(Duration::from_secs(10), body).await;
    let elapsed = started.elapsed();
    assert!(
        finished.is_ok() && elapsed < Duration::from_secs(10),
        "still waiting after {elapsed:?}: a handle was not woken"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn an_apply_async_handle_is_awaited() {
    within_10_seconds(async {
        let pool = ProcessPool::new(2).unwrap();
        let handle = pool.apply_async(pow, (3, 4));
        assert_spawnable_future(&handle);
        assert_eq!(handle.await.unwrap(), 81);
    })
    .await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_spawned_task_awaits_a_handle() {
    within_10_seconds(async {
        let pool = ProcessPool::new(2).unwrap();
        let handle = pool.apply_async(slow_square, (7,));
        let task = tokio::spawn(async move {
            let squared = handle.await?;
            Ok::<u64, Error>(squared + 1)
        });
        assert_eq!(task.await.unwrap().unwrap(), 50);
    })
    .await;
}

#[tokio::test(flavor = "current_thread")]
async fn many_spawned_tasks_await_their_handles() {
    within_10_seconds(async {
        let pool = ProcessPool::new(2).unwrap();
        let tasks: Vec<_> = (0..8u64)
            .map(|x| {
                let handle = pool.apply_async(pow, (x, 3));
                tokio::spawn(async move { handle.await.map(|cube| (x, cube)) })
            })
            .collect();
        let mut values = Vec::new();
        for task in tasks {
            values.push(task.await.unwrap().unwrap());
        }
        assert_eq!(values, (0..8u64).map(|x| (x, x.pow(3))).collect::<Vec<_>>());
    })
    .await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_map_async_handle_is_awaited() {
    within_10_seconds(async {
        let pool = ProcessPool::new(2).unwrap();
        let squares = pool.map_async(square, 0..1_000u64).await.unwrap();
        assert_eq!(squares, (0..1_000u64).map(square).collect::<Vec<_>>());
        let powers = pool
            .starmap_async(pow, (0..10u64).map(|x| (x, 3)))
            .await
            .unwrap();
        assert_eq!(powers, (0..10u64).map(|x| x.pow(3)).collect::<Vec<_>>());
    })
    .await;
}

#[tokio::test(flavor = "current_thread")]
async fn an_awaited_panic_is_an_error() {
    within_10_seconds(async {
        let pool = ProcessPool::new(2).unwrap();
        let err = pool.apply_async(panics, (3,)).await.unwrap_err();
        assert!(err.is_panic(), "{err}");
        assert!(err.to_string().contains("no 3"), "{err}");
        let err = pool.map_async(panics, [5u64]).await.unwrap_err();
        assert!(err.is_panic() && err.index() == Some(0), "{err}");
    })
    .await;
}

/// `tokio::time::timeout` polls the inner future before its timer, so a
/// handle that is never woken would still come out `Ok` once the timer fires
/// at 30 s. Only the elapsed time tells a real wake from that; the bound is
/// loose so that a loaded machine does not fail it.
#[tokio::test(flavor = "current_thread")]
async fn the_handle_wakes_its_task_when_the_result_comes() {
    let pool = ProcessPool::new(2).unwrap();
    let started = Instant::now();
    let outcome =
        tokio::time::timeout(Duration::from_secs(30), pool.apply_async(slow_square, (5,))).await;
    let elapsed = started.elapsed();
    assert_eq!(outcome.expect("timed out").unwrap(), 25);
    assert!(
        elapsed < Duration::from_secs(20),
        "the result of a 100 ms task came after {elapsed:?}: the waker did not fire"
    );
    assert!(elapsed >= Duration::from_millis(100), "{elapsed:?}");
}

/// Awaiting a handle must not block the runtime's only thread: another task
/// keeps ticking while a 300 ms task runs.
#[tokio::test(flavor = "current_thread")]
async fn awaiting_does_not_block_the_runtime() {
    within_10_seconds(async {
        let pool = ProcessPool::new(2).unwrap();
        let ticks = Arc::new(AtomicUsize::new(0));
        let ticker = {
            let ticks = Arc::clone(&ticks);
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    ticks.fetch_add(1, Ordering::SeqCst);
                }
            })
        };
        tokio::task::yield_now().await;
        assert_eq!(pool.apply_async(slower_square, (4,)).await.unwrap(), 16);
        let ticked = ticks.load(Ordering::SeqCst);
        ticker.abort();
        assert!(
            ticked >= 1,
            "the ticker ticked {ticked} times during a 300 ms await"
        );
    })
    .await;
}

async fn await_through_the_trait<P: Pool>(pool: &P) {
    assert_eq!(pool.apply_async(pow, (2, 5)).await.unwrap(), 32);
    assert_eq!(pool.map_async(square, 0..4u64).await.unwrap(), [0, 1, 4, 9]);
    assert!(pool.apply_async(panics, (1,)).await.unwrap_err().is_panic());
}

#[tokio::test(flavor = "current_thread")]
async fn every_pool_s_handles_are_awaited() {
    within_10_seconds(async {
        await_through_the_trait(&ProcessPool::new(2).unwrap()).await;
        await_through_the_trait(&ThreadPool::new(2).unwrap()).await;
        await_through_the_trait(&SerialPool::new()).await;
    })
    .await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_handle_of_a_closed_pool_awaits_to_closed() {
    within_10_seconds(async {
        let pool = ProcessPool::new(1).unwrap();
        pool.close();
        let result = pool.apply_async(pow, (2, 2)).await;
        assert!(matches!(result, Err(Error::Closed)), "{result:?}");
    })
    .await;
}

/// What `std::thread::JoinHandle` offers: shared across threads, and looked
/// at from `&self`. Fails to compile if a handle stops being `Send + Sync`.
fn assert_shareable<T: Send + Sync>(_: &T) {}

#[test]
fn a_handle_is_polled_and_waited_on_from_two_threads_at_once() {
    let pool = ProcessPool::new(1).unwrap();
    let handle: AsyncResult<u64> = pool.apply_async(slower_square, (6,));
    assert_shareable(&handle);
    let started = Instant::now();
    let (polled, waited) = std::thread::scope(|s| {
        let poller = s.spawn(|| {
            let mut polls = 0u32;
            while !handle.is_ready() {
                polls += 1;
                assert!(started.elapsed() < Duration::from_secs(10), "never ready");
                std::thread::sleep(Duration::from_millis(1));
            }
            polls
        });
        // A short wait times out, a long one sees the result, while the
        // other thread polls.
        let waiter = s.spawn(|| {
            let short = handle.wait_timeout(Duration::from_millis(20));
            let long = handle.wait_timeout(Duration::from_secs(10));
            (short, long, started.elapsed())
        });
        (poller.join().unwrap(), waiter.join().unwrap())
    });
    let (short, long, at) = waited;
    assert!(!short, "a 300 ms task was ready within 20 ms");
    assert!(long, "not ready after 10 s");
    assert!(polled > 0, "ready at the first poll");
    // The waiter woke when the reply came, not at its deadline.
    assert!(at < Duration::from_secs(5), "woke after {at:?}");
    assert_eq!(handle.get().unwrap(), 36);
}

#[test]
fn a_thread_waiting_on_a_handle_wakes_when_the_pool_is_terminated() {
    let pool = ProcessPool::new(1).unwrap();
    let handle = pool.apply_async(|_: u64| std::thread::sleep(Duration::from_secs(60)), (0,));
    let started = Instant::now();
    std::thread::scope(|s| {
        let waiter = s.spawn(|| handle.wait_timeout(Duration::from_secs(30)));
        std::thread::sleep(Duration::from_millis(100));
        pool.terminate();
        assert!(waiter.join().unwrap(), "the waiter timed out");
    });
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(handle.get(), Err(Error::Closed)));
}
