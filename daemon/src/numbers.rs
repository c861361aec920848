//! Every number a display sends is checked here, in one place, before anything turns it into
//! a duration or does arithmetic with it: a pause of `1e20` seconds once panicked the core.
//! The display's numbers are `pause_audio.seconds` (f64) and `trend.minutes` (u32); nothing
//! else from a client is a number.

use crate::core::Refusal;
use crate::trend::MAX_TREND_MINUTES;
use vigil_protocol::display::ClientMessage;

/// The longest audio pause a display may ask for, in seconds (the engine caps it further, at
/// the profile's maximum).
pub const MAX_PAUSE_SECONDS: f64 = 3600.0;

/// Checks every number a display sends before anything acts on it: the one place where a
/// client's numbers meet durations and arithmetic. `Err` is the display's `error` answer.
pub fn check_numbers(message: &ClientMessage) -> Result<(), Refusal> {
    let out_of_range = |reason: String| Refusal {
        code: "bad_message",
        reason,
    };
    match message {
        ClientMessage::PauseAudio {
            seconds: Some(s), ..
        } if !(s.is_finite() && *s > 0.0 && *s <= MAX_PAUSE_SECONDS) => Err(out_of_range(format!(
            "seconds must be a number above 0 and at most {MAX_PAUSE_SECONDS}, not {s}"
        ))),
        ClientMessage::Trend { minutes, .. } if !(1..=MAX_TREND_MINUTES).contains(minutes) => {
            Err(out_of_range(format!(
                "minutes must be 1 to {MAX_TREND_MINUTES}, not {minutes}"
            )))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pause(seconds: f64) -> ClientMessage {
        ClientMessage::PauseAudio {
            seconds: Some(seconds),
            request_id: None,
        }
    }

    fn trend(minutes: u32) -> ClientMessage {
        ClientMessage::Trend {
            minutes,
            request_id: None,
        }
    }

    #[test]
    fn numbers_inside_their_range_pass_and_the_rest_are_refused() {
        for ok in [
            pause(0.001),
            pause(60.0),
            pause(3600.0),
            trend(1),
            trend(480),
        ] {
            assert_eq!(check_numbers(&ok), Ok(()), "{ok:?}");
        }
        for bad in [
            pause(0.0),
            pause(-1.0),
            pause(3600.001),
            pause(1e20),
            pause(f64::MAX),
            pause(f64::INFINITY),
            pause(f64::NAN),
            trend(0),
            trend(481),
            trend(u32::MAX),
        ] {
            let refusal = check_numbers(&bad).expect_err("refused");
            assert_eq!(refusal.code, "bad_message");
            assert!(refusal.reason.contains("must be"), "{}", refusal.reason);
        }
        let default_pause = ClientMessage::PauseAudio {
            seconds: None,
            request_id: None,
        };
        assert_eq!(check_numbers(&default_pause), Ok(()));
    }
}
