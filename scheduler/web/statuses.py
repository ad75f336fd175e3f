"""The HTTP status of each category of operator-facing error: the one table the API's JSON
errors and the dashboard's error pages answer by.
"""

from __future__ import annotations

from scheduler.errors import Category

STATUS: dict[Category, int] = {
    Category.INVALID: 400,
    Category.NOT_CONFIGURED: 404,
    Category.NOT_FOUND: 404,
    Category.REFUSED: 400,
    Category.REJECTED: 422,
    Category.TOO_SOON: 429,
    Category.REFUSED_UPSTREAM: 502,
    Category.UNAVAILABLE: 503,
    Category.UNAUTHORIZED: 401,
    Category.FORBIDDEN: 403,
}
