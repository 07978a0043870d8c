"""HubSpot's rate limits: the ten-secondly window, the daily limit of private apps and the
search limit, the 429s they answer and the ``X-HubSpot-RateLimit-*`` headers."""

from __future__ import annotations

import math
import time
from collections import Counter, deque
from typing import Any

from connectors.fakes.app import BadRequest, Json, Response
from connectors.fakes.faults import number_option
from connectors.fakes.hubspot.config import Config
from connectors.fakes.hubspot.faults import Fault
from connectors.fakes.hubspot.texts import rate_limit_body
from connectors.fakes.state import StateBase


class RateLimits(StateBase[Fault]):
    """The rate windows and counters (monotonic clock)."""

    config: Config
    window: deque[float]  # ten-secondly counted calls
    search_window: deque[float]
    daily_used: int
    api_calls: int
    rate_limited: Counter[str]

    def clear_limits(self) -> None:
        self.window = deque()
        self.search_window = deque()
        self.daily_used = 0
        self.api_calls = 0
        self.rate_limited = Counter()

    # --- rate limits --------------------------------------------------------------------------

    def rate_limit(
        self, endpoint: str, auth: str, forced: Fault | None
    ) -> tuple[Response | None, dict[str, str]]:
        """Count the call against the limits; (the 429 or None, the X-HubSpot-RateLimit headers).

        Headers [LIMITS; HubSpot changelog 2018-11-06 "Rate limit information headers will be
        included in HTTP responses"]: -Daily and -Daily-Remaining are only sent for private-app
        tokens (OAuth calls have no daily limit), -Interval-Milliseconds, -Max and -Remaining
        describe the ten-secondly window, -Secondly and -Secondly-Remaining are still sent but
        no longer enforced. Search is exempt from the ten-secondly limit [SPEC contacts.json
        x-hubspot-rate-limit-exemptions: ["ten-secondly"]] and has its own per-second limit.
        """
        config = self.config
        search = endpoint.endswith(".search")
        with self.lock:
            now = time.monotonic()
            while self.window and self.window[0] <= now - 10.0:
                self.window.popleft()
            while self.search_window and self.search_window[0] <= now - 1.0:
                self.search_window.popleft()
            policy: str | None = None
            if forced is not None:
                policy = "DAILY" if forced.mode == "rate_limit_daily" else "TEN_SECONDLY_ROLLING"
            elif (
                auth == "private_app"
                and config.daily_limit
                and self.daily_used >= config.daily_limit
            ):
                policy = "DAILY"
            elif (
                search
                and config.search_per_second
                and len(self.search_window) >= config.search_per_second
            ):
                policy = "SECONDLY"
            elif not search and config.ten_secondly and len(self.window) >= config.ten_secondly:
                policy = "TEN_SECONDLY_ROLLING"
            if policy is None:
                if search:
                    self.search_window.append(now)
                else:
                    self.window.append(now)
                self.daily_used += 1
                self.api_calls += 1
            else:
                self.rate_limited[policy] += 1
            headers = self._limit_headers(now, auth, exhausted=policy == "TEN_SECONDLY_ROLLING")
        if policy is None:
            return None, headers
        return Response(429, rate_limit_body(policy, config, forced), headers), headers

    def _limit_headers(self, now: float, auth: str, exhausted: bool) -> dict[str, str]:
        config = self.config
        headers: dict[str, str] = {}
        if auth == "private_app" and config.daily_limit:
            headers["X-HubSpot-RateLimit-Daily"] = str(config.daily_limit)
            headers["X-HubSpot-RateLimit-Daily-Remaining"] = str(
                max(config.daily_limit - self.daily_used, 0)
            )
        if config.ten_secondly:
            remaining = 0 if exhausted else max(config.ten_secondly - len(self.window), 0)
            secondly = math.ceil(config.ten_secondly / 10)
            last_second = 0
            for stamp in reversed(self.window):
                if stamp <= now - 1.0:
                    break
                last_second += 1
            headers["X-HubSpot-RateLimit-Interval-Milliseconds"] = "10000"
            headers["X-HubSpot-RateLimit-Max"] = str(config.ten_secondly)
            headers["X-HubSpot-RateLimit-Remaining"] = str(remaining)
            headers["X-HubSpot-RateLimit-Secondly"] = str(secondly)
            headers["X-HubSpot-RateLimit-Secondly-Remaining"] = str(max(secondly - last_second, 0))
        return headers

    def set_limits(self, body: Any) -> Json:
        if not isinstance(body, dict):
            raise BadRequest(
                "expected a JSON object", [{"field": "body", "message": "expected a JSON object"}]
            )
        errors: list[Json] = []
        known = ("ten_secondly", "daily", "search_per_second", "token_ttl")
        errors.extend({"field": k, "message": "unknown limit"} for k in body if k not in known)
        values = {k: number_option(body, k, errors, integer=True) for k in known}
        if errors:
            raise BadRequest("invalid limits", errors)
        with self.lock:
            if values["ten_secondly"] is not None:
                self.config.ten_secondly = values["ten_secondly"]
            if values["daily"] is not None:
                self.config.daily_limit = values["daily"]
            if values["search_per_second"] is not None:
                self.config.search_per_second = values["search_per_second"]
            if values["token_ttl"] is not None:
                self.config.token_ttl = values["token_ttl"]
        return self.limits()

    def limits(self) -> Json:
        config = self.config
        return {
            "ten_secondly": config.ten_secondly,
            "daily": config.daily_limit,
            "search_per_second": config.search_per_second,
            "token_ttl": config.token_ttl,
            "daily_used": self.daily_used,
        }
