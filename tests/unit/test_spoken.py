"""Amounts, dates and numbers in words for the TTS voice. Every expected string is written out by
hand (not produced by the library), so a change of num2words' output shows here."""

from datetime import date
from decimal import Decimal

import pytest

from ivr.spoken import spoken_amount, spoken_date, spoken_languages, spoken_number


@pytest.mark.parametrize(
    ("amount", "expected"),
    [
        ("0", "ноль рублей"),
        ("1", "один рубль"),
        ("2", "два рубля"),
        ("5", "пять рублей"),
        ("11", "одиннадцать рублей"),
        ("21", "двадцать один рубль"),
        ("22", "двадцать два рубля"),
        ("25", "двадцать пять рублей"),
        ("101", "сто один рубль"),
        ("111", "сто одиннадцать рублей"),
        ("1000", "одна тысяча рублей"),
        ("1001", "одна тысяча один рубль"),
        ("2000", "две тысячи рублей"),
        ("21000", "двадцать одна тысяча рублей"),
        ("350.50", "триста пятьдесят рублей пятьдесят копеек"),
        ("0.01", "одна копейка"),
        ("0.02", "две копейки"),
        ("0.05", "пять копеек"),
        ("0.21", "двадцать одна копейка"),
        ("0.22", "двадцать две копейки"),
        ("0.11", "одиннадцать копеек"),
        ("1.01", "один рубль одна копейка"),
        ("5.00", "пять рублей"),
        (
            "1234567.89",
            "один миллион двести тридцать четыре тысячи пятьсот шестьдесят семь рублей "
            "восемьдесят девять копеек",
        ),
        ("2000000", "два миллиона рублей"),
        ("2000001.02", "два миллиона один рубль две копейки"),
        ("-350.50", "минус триста пятьдесят рублей пятьдесят копеек"),
        ("-1", "минус один рубль"),
        ("-0.05", "минус пять копеек"),
    ],
)
def test_roubles_in_russian(amount: str, expected: str) -> None:
    assert spoken_amount(Decimal(amount), "RUB", "ru") == expected


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        ("0", "USD", "ноль долларов"),
        ("1", "USD", "один доллар"),
        ("2", "USD", "два доллара"),
        ("5", "USD", "пять долларов"),
        ("21", "USD", "двадцать один доллар"),
        ("111", "USD", "сто одиннадцать долларов"),
        ("1001", "USD", "одна тысяча один доллар"),
        ("0.01", "USD", "один цент"),
        ("0.02", "USD", "два цента"),
        ("0.05", "USD", "пять центов"),
        ("0.21", "USD", "двадцать один цент"),
        ("12.22", "USD", "двенадцать долларов двадцать два цента"),
        ("1", "EUR", "один евро"),
        ("2", "EUR", "два евро"),
        ("25", "EUR", "двадцать пять евро"),
        ("1000", "EUR", "одна тысяча евро"),
        ("2000000", "EUR", "два миллиона евро"),
        ("3.01", "EUR", "три евро один цент"),
        ("-7.50", "EUR", "минус семь евро пятьдесят центов"),
    ],
)
def test_dollars_and_euros_in_russian(amount: str, currency: str, expected: str) -> None:
    assert spoken_amount(Decimal(amount), currency, "ru") == expected


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        ("0", "USD", "zero dollars"),
        ("1", "USD", "one dollar"),
        ("2", "USD", "two dollars"),
        ("5", "USD", "five dollars"),
        ("11", "USD", "eleven dollars"),
        ("21", "USD", "twenty-one dollars"),
        ("22", "USD", "twenty-two dollars"),
        ("25", "USD", "twenty-five dollars"),
        ("101", "USD", "one hundred one dollars"),
        ("111", "USD", "one hundred eleven dollars"),
        ("1000", "USD", "one thousand dollars"),
        ("1001", "USD", "one thousand one dollars"),
        ("1250.50", "USD", "one thousand two hundred fifty dollars and fifty cents"),
        ("0.01", "USD", "one cent"),
        ("0.02", "USD", "two cents"),
        ("0.05", "USD", "five cents"),
        ("0.21", "USD", "twenty-one cents"),
        ("1.01", "USD", "one dollar and one cent"),
        (
            "1234567.89",
            "USD",
            "one million two hundred thirty-four thousand five hundred sixty-seven dollars "
            "and eighty-nine cents",
        ),
        ("2000000", "USD", "two million dollars"),
        ("-1250.50", "USD", "minus one thousand two hundred fifty dollars and fifty cents"),
        ("1", "EUR", "one euro"),
        ("2.01", "EUR", "two euros and one cent"),
        ("1000", "EUR", "one thousand euros"),
        ("1", "RUB", "one ruble"),
        ("350.50", "RUB", "three hundred fifty rubles and fifty kopecks"),
        ("0.01", "RUB", "one kopeck"),
        ("-21", "RUB", "minus twenty-one rubles"),
    ],
)
def test_amounts_in_english(amount: str, currency: str, expected: str) -> None:
    assert spoken_amount(Decimal(amount), currency, "en") == expected


@pytest.mark.parametrize(
    ("amount", "language", "expected"),
    [
        ("12.345", "en", "twelve dollars and thirty-five cents"),
        ("12.344", "en", "twelve dollars and thirty-four cents"),
        ("0.995", "en", "one dollar"),
        ("-0.004", "en", "zero dollars"),
        ("-0.005", "en", "minus one cent"),
        ("1.005", "ru", "один доллар один цент"),
        ("99.999", "ru", "сто долларов"),
    ],
)
def test_amounts_are_rounded_half_up_to_cents(amount: str, language: str, expected: str) -> None:
    assert spoken_amount(Decimal(amount), "USD", language) == expected


@pytest.mark.parametrize(
    ("amount", "currency", "language", "expected"),
    [
        ("1", "KZT", "en", "one K Z T"),
        ("2000", "kzt", "en", "two thousand K Z T"),
        ("12.50", "KZT", "en", "twelve point five K Z T"),
        ("12.05", "KZT", "en", "twelve point zero five K Z T"),
        ("-3", "KZT", "en", "minus three K Z T"),
        ("21", "KZT", "ru", "двадцать один K Z T"),
        ("12.50", "KZT", "ru", "двенадцать целых пятьдесят сотых K Z T"),
        ("1.01", "KZT", "ru", "одна целая одна сотая K Z T"),
        ("2.02", "KZT", "ru", "две целых две сотых K Z T"),
        ("1000000.21", "KZT", "ru", "один миллион целых двадцать одна сотая K Z T"),
    ],
)
def test_an_unknown_currency_is_the_number_then_its_code_letters(
    amount: str, currency: str, language: str, expected: str
) -> None:
    assert spoken_amount(Decimal(amount), currency, language) == expected


@pytest.mark.parametrize("currency", ["", "RU", "RUBL", "R1B", "US D", "дол"])
def test_a_malformed_currency_code_is_refused(currency: str) -> None:
    with pytest.raises(ValueError, match="not a currency code"):
        spoken_amount(Decimal(1), currency, "en")


@pytest.mark.parametrize("amount", ["NaN", "Infinity", "-Infinity"])
def test_a_non_finite_amount_is_refused(amount: str) -> None:
    with pytest.raises(ValueError, match="cannot speak the amount"):
        spoken_amount(Decimal(amount), "RUB", "ru")


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (1, "November first"),
        (2, "November second"),
        (3, "November third"),
        (11, "November eleventh"),
        (12, "November twelfth"),
        (13, "November thirteenth"),
        (21, "November twenty-first"),
        (22, "November twenty-second"),
        (23, "November twenty-third"),
        (25, "November twenty-fifth"),
        (30, "November thirtieth"),
    ],
)
def test_days_in_english(day: int, expected: str) -> None:
    assert spoken_date(date(2026, 11, day), "en") == expected


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (date(2026, 1, 31), "January thirty-first"),
        (date(2026, 2, 28), "February twenty-eighth"),
        (date(2026, 3, 20), "March twentieth"),
        (date(2026, 4, 1), "April first"),
        (date(2026, 5, 9), "May ninth"),
        (date(2026, 6, 12), "June twelfth"),
        (date(2026, 7, 4), "July fourth"),
        (date(2026, 8, 31), "August thirty-first"),
        (date(2026, 9, 3), "September third"),
        (date(2026, 10, 22), "October twenty-second"),
        (date(2026, 12, 31), "December thirty-first"),
    ],
)
def test_months_in_english(day: date, expected: str) -> None:
    assert spoken_date(day, "en") == expected


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (date(2026, 1, 1), "первого января"),
        (date(2026, 2, 2), "второго февраля"),
        (date(2026, 3, 3), "третьего марта"),
        (date(2026, 4, 11), "одиннадцатого апреля"),
        (date(2026, 5, 20), "двадцатого мая"),
        (date(2026, 6, 21), "двадцать первого июня"),
        (date(2026, 7, 23), "двадцать третьего июля"),
        (date(2026, 8, 25), "двадцать пятого августа"),
        (date(2026, 9, 30), "тридцатого сентября"),
        (date(2026, 10, 31), "тридцать первого октября"),
        (date(2026, 11, 25), "двадцать пятого ноября"),
        (date(2026, 12, 31), "тридцать первого декабря"),
        (date(2026, 1, 20), "двадцатого января"),
        (date(2026, 12, 2), "второго декабря"),
        (date(2026, 3, 12), "двенадцатого марта"),
    ],
)
def test_dates_in_russian_are_genitive(day: date, expected: str) -> None:
    assert spoken_date(day, "ru") == expected


@pytest.mark.parametrize(
    ("day", "language", "without_year", "with_year"),
    [
        (
            date(2026, 11, 25),
            "ru",
            "двадцать пятого ноября",
            "двадцать пятого ноября две тысячи двадцать шестого года",
        ),
        (date(2000, 1, 1), "ru", "первого января", "первого января двухтысячного года"),
        (date(2001, 3, 8), "ru", "восьмого марта", "восьмого марта две тысячи первого года"),
        (
            date(2030, 12, 31),
            "ru",
            "тридцать первого декабря",
            "тридцать первого декабря две тысячи тридцатого года",
        ),
        (
            date(2026, 11, 25),
            "en",
            "November twenty-fifth",
            "November twenty-fifth, twenty twenty-six",
        ),
        (date(2030, 1, 1), "en", "January first", "January first, twenty thirty"),
        (
            date(2000, 2, 29),
            "en",
            "February twenty-ninth",
            "February twenty-ninth, two thousand",
        ),
        (date(2001, 3, 8), "en", "March eighth", "March eighth, two thousand one"),
    ],
)
def test_the_year_only_when_asked(
    day: date, language: str, without_year: str, with_year: str
) -> None:
    assert spoken_date(day, language) == without_year
    assert spoken_date(day, language, with_year=True) == with_year


@pytest.mark.parametrize(
    ("n", "language", "expected"),
    [
        (0, "ru", "ноль"),
        (1, "ru", "один"),
        (2, "ru", "два"),
        (21, "ru", "двадцать один"),
        (22, "ru", "двадцать два"),
        (1000, "ru", "одна тысяча"),
        (1001, "ru", "одна тысяча один"),
        (2000000, "ru", "два миллиона"),
        (-5, "ru", "минус пять"),
        (0, "en", "zero"),
        (1, "en", "one"),
        (21, "en", "twenty-one"),
        (101, "en", "one hundred one"),
        (1001, "en", "one thousand one"),
        (1234567, "en", "one million two hundred thirty-four thousand five hundred sixty-seven"),
        (-5, "en", "minus five"),
    ],
)
def test_numbers(n: int, language: str, expected: str) -> None:
    assert spoken_number(n, language) == expected


def test_the_languages() -> None:
    assert spoken_languages() == frozenset({"en", "ru"})


@pytest.mark.parametrize("language", ["de", "ru-RU", "EN", ""])
def test_an_unsupported_language_is_refused_by_every_function(language: str) -> None:
    message = "no spoken forms for language .*: use one of \\['en', 'ru'\\]"
    with pytest.raises(ValueError, match=message):
        spoken_number(1, language)
    with pytest.raises(ValueError, match=message):
        spoken_amount(Decimal(1), "RUB", language)
    with pytest.raises(ValueError, match=message):
        spoken_date(date(2026, 1, 1), language)


def test_a_number_too_large_to_speak_is_refused() -> None:
    with pytest.raises(ValueError, match="only numbers of magnitude below 10\\*\\*18"):
        spoken_number(10**18, "ru")
    with pytest.raises(ValueError, match="only numbers of magnitude below 10\\*\\*18"):
        spoken_amount(Decimal(-(10**18)), "USD", "en")
    with pytest.raises(ValueError, match="only numbers of magnitude below 10\\*\\*18"):
        spoken_amount(Decimal("1e40"), "RUB", "ru")
    assert spoken_number(10**18 - 1, "en").startswith("nine hundred ninety-nine quadrillion")
