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
        "report_link": "Callback compliance report",
        "report_title": "Callback compliance",
        "report_from": "From",
        "report_to": "To (included)",
        "report_show": "Show",
        "report_note": "Tasks created and survey answers given on these days ({zone} time). "
                       "On time: resolved by the deadline, of the tasks resolved or past their "
                       "deadline. Overdue: marked overdue, or still open past the deadline. "
                       "Times to resolve are working minutes (median and 90th percentile, "
                       "nearest rank).",
        "report_tasks_heading": "Callback tasks",
        "report_summary": "In all",
        "report_all": "All",
        "report_tasks": "Tasks",
        "report_resolved": "Resolved",
        "report_on_time_share": "On time",
        "report_median": "Median to resolve",
        "report_p90": "90% resolved within",
        "report_overdue": "Overdue",
        "report_minutes": "{n} min",
        "report_by_source": "By source",
        "report_by_week": "By week",
        "report_by_agent": "By agent",
        "report_week": "Week",
        "report_agent": "Agent",
        "report_nothing": "Nothing in this period.",
        "report_csat": "Customer satisfaction (CSAT)",
        "report_responses": "Answers",
        "report_average": "Average score",
        "source_low_score": "Low survey score",
        "source_manager_requested": "Manager requested",
        "source_missed_call": "Missed call",
        "source_callback_requested": "Callback requested",
        "agent_unassigned": "(unassigned)",
        "agent_unknown": "(unknown)",
        "chart_tasks_per_week": "Tasks per week",
        "chart_on_time_per_week": "Resolved on time, per week",
        "chart_overdue_per_week": "Overdue tasks per week",
        "chart_median_per_agent": "Median minutes to resolve, per agent",
        "chart_csat_per_week": "Average score per week",
        "chart_csat_distribution": "Answers per score",
        "report_bad_period_title": "Bad period",
        "report_bad_period": "Give the dates as YYYY-MM-DD, the first not after the last, "
                             "at most 366 days.",
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
        "report_link": "Отчёт о соблюдении сроков обратных звонков",
        "report_title": "Соблюдение сроков обратных звонков",
        "report_from": "С",
        "report_to": "По (включительно)",
        "report_show": "Показать",
        "report_note": "Задачи, созданные, и ответы на опросы, полученные в эти дни (время "
                       "{zone}). В срок: решено до крайнего срока, из задач решённых или с "
                       "истёкшим сроком. Просрочено: отмечено просроченным или всё ещё открыто "
                       "после срока. Время решения — в рабочих минутах (медиана и 90-й "
                       "процентиль, по ближайшему рангу).",
        "report_tasks_heading": "Задачи на обратный звонок",
        "report_summary": "Всего",
        "report_all": "Все",
        "report_tasks": "Задачи",
        "report_resolved": "Решено",
        "report_on_time_share": "В срок",
        "report_median": "Медиана решения",
        "report_p90": "90% решено за",
        "report_overdue": "Просрочено",
        "report_minutes": "{n} мин",
        "report_by_source": "По источнику",
        "report_by_week": "По неделям",
        "report_by_agent": "По сотрудникам",
        "report_week": "Неделя",
        "report_agent": "Сотрудник",
        "report_nothing": "За этот период ничего нет.",
        "report_csat": "Удовлетворённость клиентов (CSAT)",
        "report_responses": "Ответы",
        "report_average": "Средняя оценка",
        "source_low_score": "Низкая оценка в опросе",
        "source_manager_requested": "Запрос менеджера",
        "source_missed_call": "Пропущенный звонок",
        "source_callback_requested": "Просьба перезвонить",
        "agent_unassigned": "(не назначено)",
        "agent_unknown": "(неизвестно)",
        "chart_tasks_per_week": "Задачи по неделям",
        "chart_on_time_per_week": "Решено в срок, по неделям",
        "chart_overdue_per_week": "Просроченные задачи по неделям",
        "chart_median_per_agent": "Медиана минут до решения, по сотрудникам",
        "chart_csat_per_week": "Средняя оценка по неделям",
        "chart_csat_distribution": "Ответы по оценкам",
        "report_bad_period_title": "Неверный период",
        "report_bad_period": "Укажите даты в виде ГГГГ-ММ-ДД, первую не позже последней, "
                             "не больше 366 дней.",
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
