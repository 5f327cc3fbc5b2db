"""Amounts, dates and numbers as the words a warning call speaks, in Russian and English.

espeak-ng reads "350.50 RUB" or "25.11.2026" digit group by digit group, with no currency and no
grammar, so the texts of a call are given words instead: «триста пятьдесят рублей пятьдесят
копеек», «двадцать пятого ноября», "November twenty-fifth". Pure functions over plain values; the
language is "en" or "ru" (`spoken_languages()`), anything else raises `ValueError`.

The number words (cardinals, ordinals, Russian case) come from num2words. Agreement is done here:
the one / few / many forms of the counted noun and the gender of "one" and "two" (одна копейка,
две копейки). Its currency mode is not used: given an int it counts kopecks, it always says
«ноль копеек», and its feminine gender also reaches the millions («две миллиона»). English
numbers are said the American way, without "and" inside them or commas ("one hundred one"),
so the only "and" of an amount is the one before the cents.

Currency names: RUB, USD and EUR (main and minor unit) are in the table below. Any other
three-letter code is spoken as the number followed by the code's letters ("K Z T"); the cents,
if any, as a decimal fraction ("twelve point five K Z T", «двенадцать целых пятьдесят сотых
K Z T»). CLDR's names (through Babel) were considered and not used: they give the plural forms
but not the grammatical gender a Russian count needs (одна гривна, not один), nor the minor
unit's name, and would be a second dependency for codes a warning call does not use today.

Amounts are rounded to kopecks / cents half up. A whole amount has no minor part («одна тысяча
рублей»); an amount below one unit has no main part ("fifty cents"). Negative amounts start with
"minus" / «минус».
"""

import re
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

from num2words import num2words

_MAX_SPOKEN = 10**18  # exclusive; num2words' Russian stops at 10**36, no balance comes close

_CENT = Decimal("0.01")
_CURRENCY_CODE = re.compile(r"[A-Z]{3}")


@dataclass(frozen=True)
class _Unit:
    """A counted noun: its forms for one, few (2-4) and many, and whether it is feminine
    (Russian "one" and "two" agree with it). English uses the first form for one, else the
    second."""

    one: str
    few: str
    many: str
    feminine: bool = False


@dataclass(frozen=True)
class _Currency:
    main: _Unit
    minor: _Unit


_EN_CURRENCIES = {
    "RUB": _Currency(_Unit("ruble", "rubles", "rubles"), _Unit("kopeck", "kopecks", "kopecks")),
    "USD": _Currency(_Unit("dollar", "dollars", "dollars"), _Unit("cent", "cents", "cents")),
    "EUR": _Currency(_Unit("euro", "euros", "euros"), _Unit("cent", "cents", "cents")),
}
_RU_CENT = _Unit("цент", "цента", "центов")
_RU_CURRENCIES = {
    "RUB": _Currency(
        _Unit("рубль", "рубля", "рублей"),
        _Unit("копейка", "копейки", "копеек", feminine=True),
    ),
    "USD": _Currency(_Unit("доллар", "доллара", "долларов"), _RU_CENT),
    "EUR": _Currency(_Unit("евро", "евро", "евро"), _RU_CENT),  # один евро: masculine
}

_EN_MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)
_RU_MONTHS_GENITIVE = (
    "января", "февраля", "марта", "апреля", "мая", "июня",
    "июля", "августа", "сентября", "октября", "ноября", "декабря",
)
_RU_FEMININE = {"один": "одна", "два": "две"}
_RU_WHOLE = _Unit("целая", "целых", "целых", feminine=True)  # две целых: genitive after 2-4
_RU_HUNDREDTH = _Unit("сотая", "сотых", "сотых", feminine=True)


def spoken_languages() -> frozenset[str]:
    """The languages every function here speaks."""
    return frozenset({"en", "ru"})


def spoken_number(n: int, language: str) -> str:
    """`n` as a cardinal (masculine in Russian: «двадцать один день»)."""
    _check_language(language)
    return _cardinal(n, language)


def spoken_amount(amount: Decimal, currency: str, language: str) -> str:
    """`amount` of `currency` (an ISO 4217 code) rounded to two places half up, in words:
    «триста пятьдесят рублей пятьдесят копеек», "one thousand dollars"."""
    _check_language(language)
    if not amount.is_finite():
        raise ValueError(f"cannot speak the amount {amount}")
    _check_range(int(amount))  # before rounding: quantize fails past 28 digits
    code = currency.upper()
    if not _CURRENCY_CODE.fullmatch(code):
        raise ValueError(f"not a currency code: {currency!r} (three letters, e.g. 'RUB')")
    rounded = amount.quantize(_CENT, rounding=ROUND_HALF_UP)
    sign = _minus(language) + " " if rounded < 0 else ""
    known = (_RU_CURRENCIES if language == "ru" else _EN_CURRENCIES).get(code)
    if known is None:
        return sign + _unknown_currency_amount(abs(rounded), code, language)
    return sign + _known_currency_amount(abs(rounded), known, language)


def spoken_date(day: date, language: str, *, with_year: bool = False) -> str:
    """The day of `day` with its month, as a date is said in a sentence: «двадцать пятого
    ноября» (genitive, "the campaign stops on ..."), "November twenty-fifth"; with the year when
    `with_year`: «... две тысячи двадцать шестого года», "..., twenty twenty-six"."""
    _check_language(language)
    if language == "ru":
        words = f"{_ru_genitive_ordinal(day.day)} {_RU_MONTHS_GENITIVE[day.month - 1]}"
        return f"{words} {_ru_genitive_ordinal(day.year)} года" if with_year else words
    words = f"{_EN_MONTHS[day.month - 1]} {_english(num2words(day.day, lang='en', to='ordinal'))}"
    return f"{words}, {_english(num2words(day.year, lang='en', to='year'))}" if with_year else words


def _check_language(language: str) -> None:
    if language not in spoken_languages():
        raise ValueError(
            f"no spoken forms for language {language!r}: use one of {sorted(spoken_languages())}"
        )


def _known_currency_amount(amount: Decimal, currency: _Currency, language: str) -> str:
    """A non-negative amount with two places: units, minor units, or both."""
    whole = int(amount)
    minor = int((amount - whole) * 100)
    parts = []
    if whole or not minor:
        parts.append(_count(whole, currency.main, language))
    if minor:
        parts.append(_count(minor, currency.minor, language))
    return (" " if language == "ru" else " and ").join(parts)


def _unknown_currency_amount(amount: Decimal, code: str, language: str) -> str:
    """A non-negative amount with two places, then the code letter by letter: no names known."""
    whole = int(amount)
    hundredths = int((amount - whole) * 100)
    number = _decimal(whole, hundredths, language) if hundredths else _cardinal(whole, language)
    return f"{number} {' '.join(code)}"


def _decimal(whole: int, hundredths: int, language: str) -> str:
    """«двенадцать целых пятьдесят сотых», "twelve point five". Not num2words' own: its Russian
    makes the whole part feminine all through («одна миллион»)."""
    if language == "ru":
        return f"{_count(whole, _RU_WHOLE, language)} {_count(hundredths, _RU_HUNDREDTH, language)}"
    digits = [_cardinal(int(digit), language) for digit in f"{hundredths:02d}".rstrip("0")]
    return " ".join([_cardinal(whole, language), "point", *digits])


def _count(n: int, unit: _Unit, language: str) -> str:
    """A non-negative count of `unit`: «двадцать две копейки», "one dollar"."""
    if language == "en":
        return f"{_cardinal(n, language)} {unit.one if n == 1 else unit.few}"
    return f"{_ru_cardinal(n, feminine=unit.feminine)} {_ru_plural(n, unit)}"


def _cardinal(n: int, language: str) -> str:
    if n < 0:
        return f"{_minus(language)} {_cardinal(-n, language)}"
    if language == "ru":
        return _ru_cardinal(n, feminine=False)
    _check_range(n)
    return _english(num2words(n, lang="en"))


def _ru_cardinal(n: int, *, feminine: bool) -> str:
    """A non-negative cardinal; `feminine` makes a final "one" / "two" agree with a feminine
    noun. Done here because num2words' own feminine also changes «два миллиона» to «две»."""
    _check_range(n)
    words = str(num2words(n, lang="ru")).split()
    if feminine:
        words[-1] = _RU_FEMININE.get(words[-1], words[-1])
    return " ".join(words)


def _ru_plural(n: int, unit: _Unit) -> str:
    """The form of `unit` after the non-negative number `n`: 1, 21, 101 take "one"; 2-4, 22-24
    take "few"; 0, 5-20, 25-30, 111-114 take "many"."""
    if n % 100 in range(11, 15):
        return unit.many
    if n % 10 == 1:
        return unit.one
    if n % 10 in (2, 3, 4):
        return unit.few
    return unit.many


def _ru_genitive_ordinal(n: int) -> str:
    """«двадцать пятого», «две тысячи двадцать шестого»: for days and years in a date."""
    return str(num2words(n, lang="ru", to="ordinal", case="genitive", gender="n"))


def _english(words: object) -> str:
    """num2words' British English made American: "one hundred and one, ..." without "and" and
    commas, so the "and" of an amount stands only before its cents."""
    return str(words).replace(",", "").replace(" and ", " ")


def _minus(language: str) -> str:
    return "минус" if language == "ru" else "minus"


def _check_range(n: int) -> None:
    if abs(n) >= _MAX_SPOKEN:
        raise ValueError(f"cannot speak {n}: only numbers of magnitude below 10**18")
