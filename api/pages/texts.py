"""The pages' words in English and Russian: one catalog per locale, the same keys in each (a
unit test checks). A signed-in person sees their own locale (`ringback user create --locale`);
a signed-out visitor sees `?lang=`, else the browser's Accept-Language, else English."""

from collections.abc import Mapping

from starlette.requests import Request

DEFAULT_LOCALE = "en"

TEXTS: Mapping[str, Mapping[str, str]] = {
    "en": {
        "lang": "en",
        "app": "ringback",
        "signin_title": "Sign in",
        "username": "Username",
        "password": "Password",
        "sign_in": "Sign in",
        "sign_out": "Sign out",
        "wrong_credentials": "Wrong username or password.",
        "locked": "Too many failed attempts. Try again in {minutes} min.",
        "home_title": "ringback",
        "signed_in_as": "Signed in as {name} ({role}).",
        "role_admin": "administrator",
        "role_marketing": "marketing",
        "role_support": "support",
        "support_link": "Callback tasks",
        "support_title": "Callback tasks",
        "support_coming": "The support queue is coming soon.",
        "forbidden_title": "Not allowed",
        "forbidden_role": "Your role may not open this page.",
        "csrf_title": "Form expired",
        "csrf_message": "The form was sent without its security token, or with an old one. "
                        "Go back, reload the page and send it again.",
        "bad_form": "The form could not be read.",
        "home_link": "Home",
        "other_language": "Русский",
        "other_language_code": "ru",
    },
    "ru": {
        "lang": "ru",
        "app": "ringback",
        "signin_title": "Вход",
        "username": "Имя пользователя",
        "password": "Пароль",
        "sign_in": "Войти",
        "sign_out": "Выйти",
        "wrong_credentials": "Неверное имя пользователя или пароль.",
        "locked": "Слишком много неудачных попыток. Попробуйте снова через {minutes} мин.",
        "home_title": "ringback",
        "signed_in_as": "Вы вошли как {name} ({role}).",
        "role_admin": "администратор",
        "role_marketing": "маркетинг",
        "role_support": "поддержка",
        "support_link": "Задачи на обратный звонок",
        "support_title": "Задачи на обратный звонок",
        "support_coming": "Очередь поддержки скоро появится.",
        "forbidden_title": "Нет доступа",
        "forbidden_role": "Вашей роли эта страница недоступна.",
        "csrf_title": "Форма устарела",
        "csrf_message": "Форма отправлена без защитного токена или со старым. Вернитесь, "
                        "обновите страницу и отправьте её снова.",
        "bad_form": "Не удалось прочитать форму.",
        "home_link": "Главная",
        "other_language": "English",
        "other_language_code": "en",
    },
}


def texts(locale: str | None) -> Mapping[str, str]:
    return TEXTS.get(locale or DEFAULT_LOCALE, TEXTS[DEFAULT_LOCALE])


def visitor_locale(request: Request) -> str:
    """A signed-out visitor's language: `?lang=ru|en`, else the first of Accept-Language we
    have, else English."""
    asked = request.query_params.get("lang", "")
    if asked in TEXTS:
        return asked
    for part in request.headers.get("accept-language", "").split(","):
        code = part.split(";", 1)[0].strip().lower()[:2]
        if code in TEXTS:
            return code
    return DEFAULT_LOCALE
