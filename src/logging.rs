//! The process logger: env_logger, with one correction. actix-http logs a client's protocol
//! errors at `error`, although nothing is wrong with the server; such records are logged at
//! `warn`, so `error` keeps meaning "look at this". Malformed request heads no longer reach
//! actix-http (`protocol.rs` answers them); a corrupt chunked request body still does.

use log::{Level, Log, Metadata, Record};

/// Where actix-http reports protocol errors of a connection.
const PROTOCOL_TARGET: &str = "actix_http::h1";

/// Passes records to `inner`, protocol errors of clients downgraded to `warn`.
pub struct ProtocolErrorsAsWarnings<L>(pub L);

fn is_protocol_error(target: &str, level: Level) -> bool {
    level == Level::Error && target.starts_with(PROTOCOL_TARGET)
}

impl<L: Log> Log for ProtocolErrorsAsWarnings<L> {
    fn enabled(&self, metadata: &Metadata) -> bool {
        if is_protocol_error(metadata.target(), metadata.level()) {
            return self.0.enabled(&Metadata::builder().level(Level::Warn).target(metadata.target()).build());
        }
        self.0.enabled(metadata)
    }

    fn log(&self, record: &Record) {
        if !is_protocol_error(record.target(), record.level()) {
            return self.0.log(record);
        }
        let warning = Record::builder()
            .args(*record.args())
            .level(Level::Warn)
            .target(record.target())
            .module_path(record.module_path())
            .file(record.file())
            .line(record.line())
            .build();
        if self.0.enabled(warning.metadata()) {
            self.0.log(&warning);
        }
    }

    fn flush(&self) {
        self.0.flush()
    }
}

/// Installs `builder`'s logger behind [`ProtocolErrorsAsWarnings`].
pub fn install(builder: &mut env_logger::Builder) {
    let logger = builder.build();
    let max = logger.filter();
    if log::set_boxed_logger(Box::new(ProtocolErrorsAsWarnings(logger))).is_ok() {
        log::set_max_level(max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Seen(Mutex<Vec<(Level, String)>>);

    impl Log for Seen {
        fn enabled(&self, metadata: &Metadata) -> bool {
            metadata.level() <= Level::Warn
        }
        fn log(&self, record: &Record) {
            self.0.lock().unwrap().push((record.level(), record.target().to_string()));
        }
        fn flush(&self) {}
    }

    fn log_at(logger: &impl Log, level: Level, target: &str) {
        logger.log(&Record::builder().args(format_args!("x")).level(level).target(target).build());
    }

    #[test]
    fn a_clients_malformed_request_is_a_warning_and_server_errors_stay_errors() {
        let logger = ProtocolErrorsAsWarnings(Seen::default());
        log_at(&logger, Level::Error, "actix_http::h1::dispatcher");
        log_at(&logger, Level::Error, "rockit_edge::error");
        let seen = logger.0 .0.lock().unwrap().clone();
        assert_eq!(
            seen,
            vec![(Level::Warn, "actix_http::h1::dispatcher".into()), (Level::Error, "rockit_edge::error".into())]
        );
    }
}
