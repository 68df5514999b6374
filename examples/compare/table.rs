//! The tables the comparison prints: figures with their spread over
//! rounds, how each is shown, and the rows.

/// How a figure is shown: scaled from its base unit (seconds, bytes or
/// items per second, a percentage), with so many decimals, and its unit.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Unit {
    scale: f64,
    decimals: usize,
    name: &'static str,
}

/// Millions of items per second.
pub(crate) const MEGA: Unit = Unit {
    scale: 1e-6,
    decimals: 1,
    name: "M/s",
};

/// Megabytes per second.
pub(crate) const MB_S: Unit = Unit {
    scale: 1e-6,
    decimals: 0,
    name: "MB/s",
};

/// Microseconds, from seconds.
pub(crate) const MICROS: Unit = Unit {
    scale: 1e6,
    decimals: 1,
    name: "µs",
};

/// Milliseconds, from seconds.
pub(crate) const MILLIS: Unit = Unit {
    scale: 1e3,
    decimals: 2,
    name: "ms",
};

/// Seconds.
pub(crate) const SECONDS: Unit = Unit {
    scale: 1.0,
    decimals: 3,
    name: "s",
};

/// A percentage of one core.
pub(crate) const PERCENT: Unit = Unit {
    scale: 1.0,
    decimals: 2,
    name: "%",
};

impl Unit {
    /// `value` in this unit: `4.1 µs`.
    pub(crate) fn show(self, value: f64) -> String {
        format!("{:.*} {}", self.decimals, value * self.scale, self.name)
    }

    /// A figure of several rounds: its median, then its range, `4.1 µs
    /// (3.9–4.6)`.
    pub(crate) fn spread(self, figure: Spread) -> String {
        if figure.min == figure.max {
            return self.show(figure.median);
        }
        format!(
            "{} ({:.*}–{:.*})",
            self.show(figure.median),
            self.decimals,
            figure.min * self.scale,
            self.decimals,
            figure.max * self.scale
        )
    }
}

/// A figure measured in several rounds: the median and the extremes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Spread {
    pub(crate) median: f64,
    pub(crate) min: f64,
    pub(crate) max: f64,
}

impl Spread {
    /// The spread of some measurements (at least one).
    pub(crate) fn of(values: &[f64]) -> Self {
        let mut sorted = values.to_vec();
        sorted.sort_unstable_by(f64::total_cmp);
        Spread {
            median: sorted[sorted.len() / 2],
            min: sorted[0],
            max: sorted[sorted.len() - 1],
        }
    }
}

/// What a row's ratio (forkmap's figure over the reference's) should be.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Target {
    AtLeast(f64),
    AtMost(f64),
    /// A target in its own terms, and whether it is met.
    Stated(&'static str, bool),
    /// None: the row is there to give a sense of scale.
    Scale,
}

/// One line of a table.
pub(crate) struct Row {
    case: &'static str,
    forkmap: String,
    reference: String,
    ratio: f64,
    target: String,
    met: Option<bool>,
}

impl Row {
    /// A row whose ratio is held to `target`.
    pub(crate) fn new(
        case: &'static str,
        (forkmap, reference): (String, String),
        ratio: f64,
        target: Target,
    ) -> Self {
        let (target, met) = match target {
            Target::AtLeast(bound) => (format!("≥ {bound}"), Some(ratio >= bound)),
            Target::AtMost(bound) => (format!("≤ {bound}"), Some(ratio <= bound)),
            Target::Stated(target, met) => (target.to_owned(), Some(met)),
            Target::Scale => ("(for scale)".to_owned(), None),
        };
        Row {
            case,
            forkmap,
            reference,
            ratio,
            target,
            met,
        }
    }
}

/// Prints rows as a Markdown table.
pub(crate) fn print(rows: &[Row]) {
    println!("| case | forkmap | reference | ratio | target | met |");
    println!("|---|---|---|---|---|---|");
    for row in rows {
        let met = match row.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "",
        };
        println!(
            "| {} | {} | {} | {:.3} | {} | {met} |",
            row.case, row.forkmap, row.reference, row.ratio, row.target
        );
    }
}
