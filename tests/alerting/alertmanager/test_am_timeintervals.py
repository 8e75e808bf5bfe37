"""Alertmanager's time interval tests, translated (timeinterval/timeinterval_test.go).

Go builds some intervals as structs (weekday 0 = Sunday, minutes of the day);
here they are written in the YAML form that means the same.
"""
from __future__ import annotations

import datetime as dt

import pydantic
import pytest
import yaml

from wedmetrics.alerting.silences import MuteInterval
from wedmetrics.alerting.timeintervals import TimeInterval, TimeRange


def t822(text: str) -> dt.datetime:
    """Go's time.RFC822Z: "02 Jan 06 15:04 -0700"."""
    return dt.datetime.strptime(text, "%d %b %y %H:%M %z")


NINE_TO_FIVE = [{"start_time": "09:00", "end_time": "17:00"}]

# timeIntervalTestCases (TestContainsTime): interval, times inside, times outside
CONTAINS = [
    ("TestContainsTime", {}, ["02 Jan 06 15:04 +0000", "03 Jan 07 10:04 +0000", "04 Jan 06 09:04 +0000"], []),
    ("TestContainsTime", {"times": NINE_TO_FIVE, "weekdays": ["monday:friday"]},
     ["04 May 20 15:04 +0000", "05 May 20 10:04 +0000", "09 Jun 20 09:04 +0000"],
     ["03 May 20 15:04 +0000", "04 May 20 08:59 +0000", "05 May 20 05:00 +0000"]),
    ("TestContainsTime", {"days_of_month": ["4:6"], "months": ["4"], "years": ["2020"]},
     ["04 Apr 20 15:04 +0000", "05 Apr 20 00:00 +0000", "06 Apr 20 23:05 +0000"],
     ["03 May 18 15:04 +0000", "03 Apr 20 23:59 +0000", "04 Jun 20 23:59 +0000", "06 Apr 19 23:59 +0000",
      "07 Apr 20 00:00 +0000"]),
    ("TestContainsTime", {"days_of_month": ["-3:-1"]},
     ["31 Jan 20 15:04 +0000", "30 Jan 20 15:04 +0000", "29 Jan 20 15:04 +0000", "30 Jun 20 00:00 +0000",
      "29 Feb 20 23:05 +0000"],
     ["03 May 18 15:04 +0000", "27 Jan 20 15:04 +0000", "03 Apr 20 23:59 +0000", "04 Jun 20 23:59 +0000",
      "06 Apr 19 23:59 +0000", "07 Apr 20 00:00 +0000", "01 Mar 20 00:00 +0000"]),
    # built as a struct in Go (YAML would refuse -31:31): the clamping is what is tested
    ("TestContainsTime", {"months": ((6, 6),), "days_of_month": ((-31, 31),)},
     ["30 Jun 20 00:00 +0000", "01 Jun 20 00:00 +0000"], ["31 May 20 00:00 +0000", "1 Jul 20 00:00 +0000"]),
    ("TestContainsTime", {"times": NINE_TO_FIVE, "weekdays": ["monday:friday"], "location": "Australia/Sydney"},
     ["06 Apr 21 13:00 +1000"], ["06 Apr 21 13:00 +0000"]),
    ("TestContainsTime", {"times": NINE_TO_FIVE, "weekdays": ["monday:friday"], "months": ["11"],
                          "location": "Australia/Sydney"},
     ["01 Nov 21 09:00 +1100", "31 Oct 21 22:00 +0000"], ["31 Oct 21 21:00 +0000"]),
    ("TestContainsTime", {"days_of_month": ["-1"], "location": "America/New_York"},
     ["31 Mar 21 12:00 -0400"], ["30 Mar 21 12:00 -0400"]),
]


@pytest.mark.parametrize("go_test,spec,inside,outside", CONTAINS)
def test_contains_time(go_test, spec, inside, outside):
    ti = TimeInterval.model_validate(spec)
    assert [s for s in inside if not ti.contains_datetime(t822(s))] == []
    assert [s for s in outside if ti.contains_datetime(t822(s))] == []


# timeStringTestCases (TestParseTimeString)
TIME_STRINGS = [
    ("TestParseTimeString", "{'start_time': '00:00', 'end_time': '24:00'}", (0, 1440)),
    ("TestParseTimeString", "{'start_time': '01:35', 'end_time': '17:39'}", (95, 1059)),
    ("TestParseTimeString", "{'start_time': '09:35', 'end_time': '09:39'}", (575, 579)),
    ("TestParseTimeString", "{'start_time': '17:31', 'end_time': '17:31'}", None),
    ("TestParseTimeString", "{'start_time': '12:30', 'end_time': '24:01'}", None),
    ("TestParseTimeString", "{'start_time': '09:30', 'end_time': '07:41'}", None),
    ("TestParseTimeString", "{'start_time': '24:00', 'end_time': '17:41'}", None),
    ("TestParseTimeString", "{'start_time': '14:03'}", None),
]


@pytest.mark.parametrize("go_test,text,want", TIME_STRINGS)
def test_parse_time_string(go_test, text, want):
    data = yaml.safe_load(text)
    if want is None:
        with pytest.raises(pydantic.ValidationError):
            TimeRange.model_validate(data)
    else:
        r = TimeRange.model_validate(data)
        assert (r.start_minute, r.end_minute) == want


# yamlUnmarshalTestCases (TestYamlUnmarshal): YAML list, ranges, inside, outside, error
YAML = [
    ("TestYamlUnmarshal", "- weekdays: ['monday:friday']\n  times:\n    - start_time: '09:00'\n      end_time: '17:00'",
     {"weekdays": ((1, 5),), "times": (540, 1020)}, ["08 Jul 20 09:00 +0000", "08 Jul 20 16:59 +0000"],
     ["08 Jul 20 05:00 +0000", "08 Jul 20 08:59 +0000"], None),
    ("TestYamlUnmarshal", """- weekdays: ['monday:friday', 'sunday']
  months: ['january:march']
  days_of_month: ['-7:-1']
  years: ['2020:2025', '2030:2035']
  times:
    - start_time: '09:00'
      end_time: '17:00'""",
     {"weekdays": ((1, 5), (0, 0)), "months": ((1, 3),), "days_of_month": ((-7, -1),),
      "years": ((2020, 2025), (2030, 2035)), "times": (540, 1020)},
     ["27 Jan 21 09:00 +0000", "28 Jan 21 16:59 +0000", "29 Jan 21 13:00 +0000", "31 Mar 25 13:00 +0000",
      "31 Jan 35 13:00 +0000"],
     ["30 Jan 21 13:00 +0000", "01 Apr 21 13:00 +0000", "30 Jan 26 13:00 +0000", "31 Jan 35 17:01 +0000"], None),
    ("TestYamlUnmarshal", "- weekdays: ['monday:friday']\n  times:\n    - start_time: '09:00'\n      end_time: '17:00'",
     {"weekdays": ((1, 5),)}, ["01 Apr 21 13:00 +0000"], [], None),
    ("TestYamlUnmarshal", "- times:\n    - start_time: '01:99'\n      end_time: '23:59'", None, [], [],
     "couldn't parse timestamp 01:99, invalid format"),
    ("TestYamlUnmarshal", "- times:\n    - start_time: '00:00'\n      end_time: '99:99'", None, [], [],
     "couldn't parse timestamp 99:99, invalid format"),
    ("TestYamlUnmarshal", "- weekdays: ['friday:monday']", None, [], [], "start day cannot be before end day"),
    ("TestYamlUnmarshal", "- weekdays: ['blurgsday:flurgsday']", None, [], [], "blurgsday is not a valid weekday"),
    ("TestYamlUnmarshal", "- weekdays: ['1:3']", None, [], [], "1 is not a valid weekday"),
    ("TestYamlUnmarshal", "- weekdays: ['-2:-1']", None, [], [], "-2 is not a valid weekday"),
    ("TestYamlUnmarshal", "- days_of_month: ['0']", None, [], [], "0 is not a valid day of the month: out of range"),
    ("TestYamlUnmarshal", "- days_of_month: ['-50:-20']", None, [], [],
     "-50 is not a valid day of the month: out of range"),
    ("TestYamlUnmarshal", "- days_of_month: ['1:50']", None, [], [], "50 is not a valid day of the month: out of range"),
    ("TestYamlUnmarshal", "- days_of_month: ['1:-1']", {"days_of_month": ((1, -1),)}, [], [], None),
    ("TestYamlUnmarshal", "- days_of_month: ['-15:5']", None, [], [],
     "end day must be negative if start day is negative"),
    ("TestYamlUnmarshal", "- days_of_month: ['10:-25']", None, [], [], "end day -25 is always before start day 10"),
    ("TestYamlUnmarshal", "- months: ['January:december']", {"months": ((1, 12),)}, [], [], None),
    ("TestYamlUnmarshal", "- years: ['2020:2022']\n  location: 'Australia/Sydney'",
     {"years": ((2020, 2022),), "location": "Australia/Sydney"}, [], [], None),
    ("TestYamlUnmarshal", "- months: ['martius:june']", None, [], [], "martius is not a valid month"),
    ("TestYamlUnmarshal", "- months: ['march:junius']", None, [], [], "junius is not a valid month"),
    ("TestYamlUnmarshal", "- months: ['december:january']", None, [], [],
     "end month january is before start month december"),
    ("TestYamlUnmarshal", "- years: ['2022:2020']", None, [], [], "end year 2020 is before start year 2022"),
]


@pytest.mark.parametrize("go_test,text,want,inside,outside,error", YAML)
def test_yaml_unmarshal(go_test, text, want, inside, outside, error):
    (spec,) = yaml.safe_load(text)
    if error is not None:
        with pytest.raises(pydantic.ValidationError) as e:
            TimeInterval.model_validate(spec)
        assert error in str(e.value)
        return
    ti = TimeInterval.model_validate(spec)
    for key, value in want.items():
        got = getattr(ti, key)
        if key == "times":
            got = (got[0].start_minute, got[0].end_minute)
        assert got == value, key
    assert [s for s in inside if not ti.contains_datetime(t822(s))] == []
    assert [s for s in outside if ti.contains_datetime(t822(s))] == []


# completeTestCases (TestTimeIntervalComplete)
COMPLETE = [
    ("TestTimeIntervalComplete", """weekdays: ['monday:wednesday', 'saturday', 'sunday']
times:
  - start_time: '13:00'
    end_time: '15:00'
days_of_month: ['1', '10', '20:-1']
years: ['2020:2023']
months: ['january:march']""", ["10 Jan 21 13:00 +0000", "30 Jan 21 14:24 +0000"],
     ["09 Jan 21 13:00 +0000", "20 Jan 21 12:59 +0000", "02 Feb 21 13:00 +0000"]),
    ("TestTimeIntervalComplete", "days_of_month: ['30:31']\nyears: ['2020:2023']\nmonths: ['february']", [],
     ["28 Feb 21 13:00 +0000"]),
]


@pytest.mark.parametrize("go_test,text,inside,outside", COMPLETE)
def test_time_interval_complete(go_test, text, inside, outside):
    ti = TimeInterval.model_validate(yaml.safe_load(text))
    assert [s for s in inside if not ti.contains_datetime(t822(s))] == []
    assert [s for s in outside if ti.contains_datetime(t822(s))] == []


SYDNEY = "Australia/Sydney"
EVENINGS = MuteInterval(name="evenings", time_intervals=[{"times": [
    {"start_time": "00:00", "end_time": "09:00"}, {"start_time": "17:00", "end_time": "24:00"}], "location": SYDNEY}])
WEEKENDS = MuteInterval(name="weekends", time_intervals=[{"weekdays": ["saturday", "sunday"], "location": SYDNEY}])

# TestIntervener_Mutes: which named intervals hold at a time
MUTES = [
    ("TestIntervener_Mutes", dt.datetime(2024, 1, 1, 0, 0, tzinfo=dt.timezone(dt.timedelta(hours=11))), ["evenings"]),
    ("TestIntervener_Mutes", dt.datetime(2024, 1, 1, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=11))), []),
    ("TestIntervener_Mutes", dt.datetime(2024, 1, 6, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=11))), ["weekends"]),
    ("TestIntervener_Mutes", dt.datetime(2024, 1, 6, 17, 0, tzinfo=dt.timezone(dt.timedelta(hours=11))),
     ["evenings", "weekends"]),
    ("TestIntervener_Mutes", dt.datetime(2024, 1, 1, 10, 0, tzinfo=dt.timezone.utc), ["evenings"]),
    ("TestIntervener_Mutes", dt.datetime(2024, 1, 6, 10, 0, tzinfo=dt.timezone.utc), ["evenings", "weekends"]),
]


@pytest.mark.parametrize("go_test,when,muted_by", MUTES)
def test_intervener_mutes(go_test, when, muted_by):
    assert [m.name for m in (EVENINGS, WEEKENDS) if m.active(when.timestamp())] == muted_by
