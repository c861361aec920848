//! HL7 TS/DTM timestamps (`YYYY[MM[DD[HH[MM[SS[.S...]]]]]][+/-ZZZZ]`) to UTC.

use crate::model::DeviceTime;

/// Parses an HL7 timestamp. With an offset the time is converted to UTC; without one it is kept
/// as the sender wrote it (HL7 then means the sender's local time, which Vigil cannot know).
/// Precision below a second is dropped; a time without hours reads as midnight.
pub fn parse_ts(text: &str) -> Option<DeviceTime> {
    let text = text.trim();
    let (body, offset) = match text.find(['+', '-']) {
        Some(i) => (&text[..i], Some(&text[i..])),
        None => (text, None),
    };
    let body = body.split('.').next()?;
    if body.len() < 4 || body.len() % 2 != 0 || !body.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let num = |from: usize| -> Option<u32> { body.get(from..from + 2)?.parse().ok() };
    let year: i64 = body[..4].parse().ok()?;
    let month = num(4).unwrap_or(1);
    let day = num(6).unwrap_or(1);
    let hour = num(8).unwrap_or(0);
    let minute = num(10).unwrap_or(0);
    let second = num(12).unwrap_or(0);
    if !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let mut minutes = days_from_civil(year, month, day) * 1440 + i64::from(hour * 60 + minute);
    if let Some(offset) = offset {
        let sign = if offset.starts_with('-') { -1 } else { 1 };
        let digits = &offset[1..];
        if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let h: i64 = digits[..2].parse().ok()?;
        let m: i64 = digits[2..].parse().ok()?;
        if h > 14 || m > 59 {
            return None;
        }
        minutes -= sign * (h * 60 + m);
    }
    let (y, mo, d) = civil_from_days(minutes.div_euclid(1440));
    let in_day = minutes.rem_euclid(1440);
    Some(DeviceTime {
        year: u16::try_from(y).ok(),
        month: Some(mo as u8),
        day: Some(d as u8),
        hour: (in_day / 60) as u8,
        minute: (in_day % 60) as u8,
        second: second as u8,
    })
}

/// The UTC date and time `secs` seconds after 1970-01-01T00:00:00Z (for a sender's MSH-7).
pub fn from_unix(secs: i64) -> DeviceTime {
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let in_day = secs.rem_euclid(86_400);
    DeviceTime {
        year: u16::try_from(y).ok(),
        month: Some(mo as u8),
        day: Some(d as u8),
        hour: (in_day / 3600) as u8,
        minute: (in_day / 60 % 60) as u8,
        second: (in_day % 60) as u8,
    }
}

/// Seconds since 1970-01-01T00:00:00Z of a [`DeviceTime`] with its date, else None.
pub fn to_unix(t: &DeviceTime) -> Option<i64> {
    let days = days_from_civil(i64::from(t.year?), u32::from(t.month?), u32::from(t.day?));
    Some(days * 86_400 + i64::from(t.hour) * 3600 + i64::from(t.minute) * 60 + i64::from(t.second))
}

/// Whether an HL7 timestamp carries its UTC offset (else it is the sender's local time).
pub fn has_offset(text: &str) -> bool {
    text.trim().contains(['+', '-'])
}

/// Formats a UTC [`DeviceTime`] as an HL7 timestamp with a `+0000` offset.
pub fn format_ts(t: &DeviceTime) -> String {
    format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}+0000",
        t.year.unwrap_or(1970),
        t.month.unwrap_or(1),
        t.day.unwrap_or(1),
        t.hour,
        t.minute,
        t.second
    )
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

// Howard Hinnant's civil-date algorithms (days since 1970-01-01).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(y: u16, mo: u8, d: u8, h: u8, mi: u8, s: u8) -> DeviceTime {
        DeviceTime {
            year: Some(y),
            month: Some(mo),
            day: Some(d),
            hour: h,
            minute: mi,
            second: s,
        }
    }

    #[test]
    fn offsets_convert_to_utc_across_midnight_and_leap_days() {
        assert_eq!(
            parse_ts("20240301003000+0100"),
            Some(t(2024, 2, 29, 23, 30, 0))
        );
        assert_eq!(
            parse_ts("20231231233015.1234-0130"),
            Some(t(2024, 1, 1, 1, 0, 15))
        );
        assert_eq!(parse_ts("202405201200"), Some(t(2024, 5, 20, 12, 0, 0)));
        assert_eq!(format_ts(&t(2024, 5, 20, 12, 0, 7)), "20240520120007+0000");
        assert_eq!(from_unix(1_709_163_000), t(2024, 2, 28, 23, 30, 0));
    }

    #[test]
    fn bad_timestamps_are_none() {
        for bad in [
            "",
            "2024130100",
            "20240230",
            "abc",
            "2024010125",
            "20240101+99",
            "202",
        ] {
            assert_eq!(parse_ts(bad), None, "{bad}");
        }
    }
}
