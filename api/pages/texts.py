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
        "view_open": "Open", "view_mine": "Mine", "view_overdue": "Overdue",
        "view_today": "Due today",
        "no_tasks": "No tasks here.",
        "overdue": "Overdue",
        "overdue_by": "overdue by {span}",
        "due_in": "due in {span}",
        "client": "Client",
        "deadline": "Deadline",
        "client_time": "client's time now",
        "calling_window": "Calling window",
        "score": "Score",
        "original_call": "Original call",
        "status": "Status",
        "status_open": "open", "status_claimed": "claimed",
        "status_resolved": "resolved", "status_cancelled": "cancelled",
        "claim": "Claim",
        "release": "Release",
        "resolve": "Resolve",
        "outcome": "Outcome",
        "outcome_solved": "Solved", "outcome_not_solved": "Not solved",
        "outcome_not_reached": "Not reached", "outcome_wrong_number": "Wrong number",
        "resolution_note": "What was done (optional)",
        "note_placeholder": "A note for the team",
        "add_note": "Add note",
        "task_taken": "Already claimed by {holder}.",
        "task_refused": "Not done: {reason}",
        "choose_outcome": "Choose an outcome to resolve the task.",
        "source_low_score": "Low survey score", "source_manager_requested": "Asked for the manager",
        "source_missed_call": "Missed call", "source_callback_requested": "Callback requested",
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
        "view_open": "Открытые", "view_mine": "Мои", "view_overdue": "Просроченные",
        "view_today": "На сегодня",
        "no_tasks": "Задач нет.",
        "overdue": "Просрочена",
        "overdue_by": "просрочена на {span}",
        "due_in": "осталось {span}",
        "client": "Клиент",
        "deadline": "Срок",
        "client_time": "сейчас у клиента",
        "calling_window": "Окно звонков",
        "score": "Оценка",
        "original_call": "Исходный звонок",
        "status": "Статус",
        "status_open": "открыта", "status_claimed": "взята",
        "status_resolved": "решена", "status_cancelled": "отменена",
        "claim": "Взять",
        "release": "Вернуть в очередь",
        "resolve": "Закрыть",
        "outcome": "Итог",
        "outcome_solved": "Решено", "outcome_not_solved": "Не решено",
        "outcome_not_reached": "Не дозвонились", "outcome_wrong_number": "Неверный номер",
        "resolution_note": "Что сделано (необязательно)",
        "note_placeholder": "Заметка для команды",
        "add_note": "Добавить заметку",
        "task_taken": "Задачу уже взял {holder}.",
        "task_refused": "Не выполнено: {reason}",
        "choose_outcome": "Выберите итог, чтобы закрыть задачу.",
        "source_low_score": "Низкая оценка", "source_manager_requested": "Просил менеджера",
        "source_missed_call": "Пропущенный звонок",
        "source_callback_requested": "Просил перезвонить",
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
