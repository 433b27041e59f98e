//! sd_notify STATUS= lines, so `systemctl status` shows where a step is.

pub fn status(msg: &str) {
    tracing::debug!("status: {msg}");
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Status(msg)]);
}
