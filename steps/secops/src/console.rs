//! The one printer. stdout carries only the audit lines and a dry run's `plan:` lines;
//! stderr the logs and the error messages. Nothing else in the library prints (the tidy
//! test in `tests/templates` holds every other module to it).

use std::io::Write;

/// Lines on stdout, together. A closed stdout must not turn a finished step into a failure.
pub fn out<S: AsRef<str>>(lines: impl IntoIterator<Item = S>) {
    let mut out = std::io::stdout().lock();
    for line in lines {
        let _ = writeln!(out, "{}", line.as_ref());
    }
    let _ = out.flush();
}

/// One line on stderr: an error message for the operator.
pub fn err(line: &str) {
    eprintln!("{line}");
}

/// Where the logs go (`tracing`'s writer): stderr.
pub fn log_writer() -> std::io::Stderr {
    std::io::stderr()
}
