"""The services, as the console reaches them: over HTTP, as the person signed in.

Each call carries a fresh identity assertion of the person (shared/assertions.py) signed by the
console; the service checks it and decides. A refusal comes back as `ServiceRefused` with the
service's status and its Chinese message, for the page to show. The public page calls without
any identity. After a command, the service's consistency token (if it gives one) is sent with
that person's next reads of the same service, so they see their own change at once.
"""
from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import httpx

from shared.assertions import AssertionSigner
from shared.messages import Actor
from shared.telemetry import forward_correlation

TOKEN_HEADER = "X-Lookback-Token"
AFTER_HEADER = "X-Lookback-After"


class ServiceRefused(Exception):
    def __init__(self, status: int, message: str, detail: Any = None, code: str = "") -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.message, self.detail, self.code = status, message, detail, code

    def explain(self) -> str:
        """The service's Chinese message, with the detail when it names fields."""
        if isinstance(self.detail, list):
            reasons = "；".join(f"{d.get('field', '')} {d.get('reason', '')}".strip()
                               for d in self.detail if isinstance(d, dict))
            return f"{self.message}（{reasons}）" if reasons else self.message
        if isinstance(self.detail, str) and self.detail and self.status in (409, 422):
            return f"{self.message}（{self.detail}）"
        return self.message


class Backend:
    def __init__(self, urls: Mapping[str, str], signer: AssertionSigner | None, *,
                 timeout: float = 15.0, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.urls = dict(urls)
        self.signer = signer
        self.client = httpx.AsyncClient(timeout=timeout, transport=transport)
        # Consistency tokens per session, bounded: an old session's are simply forgotten.
        self._fences: OrderedDict[str, dict[str, str]] = OrderedDict()

    async def close(self) -> None:
        await self.client.aclose()

    def as_person(self, actor: Actor | None, session_key: str | None = None) -> Caller:
        return Caller(self, actor, session_key)

    def remember(self, session_key: str | None, service: str, token: str | None) -> None:
        if session_key is None or not token:
            return
        self._fences.setdefault(session_key, {})[service] = token
        self._fences.move_to_end(session_key)
        while len(self._fences) > 10_000:
            self._fences.popitem(last=False)

    def fence(self, session_key: str | None, service: str) -> str | None:
        return self._fences.get(session_key or "", {}).get(service)


class Caller:
    """One person's calls (or nobody's, for the public page)."""

    def __init__(self, backend: Backend, actor: Actor | None, session_key: str | None) -> None:
        self.backend, self.actor, self.session_key = backend, actor, session_key

    def _headers(self, service: str, *, read: bool) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self.actor is not None:
            if self.backend.signer is None:
                raise ServiceRefused(503, "控制台未配置身份签名密钥，无法代表您访问业务服务")
            assertion = self.backend.signer.sign(self.actor, datetime.now(UTC))
            headers["Authorization"] = f"Bearer {assertion}"
        fence = self.backend.fence(self.session_key, service) if read else None
        if fence:
            headers[AFTER_HEADER] = fence
        return forward_correlation(headers)

    async def _send(self, service: str, method: str, path: str, *, read: bool,
                    **kwargs: Any) -> httpx.Response:
        url = self.backend.urls[service] + path
        try:
            response = await self.backend.client.request(
                method, url, headers=self._headers(service, read=read), **kwargs)
        except httpx.HTTPError as exc:
            raise ServiceRefused(503, f"暂时无法连接{SERVICE_LABELS.get(service, service)}服务，"
                                      "请稍后再试", type(exc).__name__, "unavailable") from None
        if response.status_code >= 400:
            try:
                body = response.json()
            except ValueError:
                body = {}
            body = body if isinstance(body, dict) else {}
            raise ServiceRefused(response.status_code, str(body.get("message") or "请求未被受理"),
                                 body.get("detail"), str(body.get("error") or ""))
        if not read:
            self.backend.remember(self.session_key, service, response.headers.get(TOKEN_HEADER))
        return response

    async def get(self, service: str, path: str, params: Mapping[str, Any] | None = None) -> Any:
        clean = {k: v for k, v in (params or {}).items() if v not in (None, "")}
        return (await self._send(service, "GET", path, read=True, params=clean)).json()

    async def download(self, service: str, path: str,
                       params: Mapping[str, Any] | None = None) -> httpx.Response:
        return await self._send(service, "GET", path, read=True, params=dict(params or {}))

    async def settle(self, service: str, path: str, ready: Callable[[Any], bool], *,
                     params: Mapping[str, Any] | None = None, timeout: float = 5.0) -> Any:
        """Read until `ready(answer)`: the services' read models follow their commands a moment
        later, and a person who just acted must see what they did on the next page. Bounded: after
        `timeout` the page shows what there is (with the consistency token of a service that gives
        one, the first read is already the one)."""
        loop = asyncio.get_running_loop()
        deadline, answer = loop.time() + timeout, None
        while True:
            try:
                answer = await self.get(service, path, params)
                if ready(answer):
                    return answer
            except ServiceRefused as exc:
                if exc.status != 404:
                    raise
            if loop.time() >= deadline:
                return answer
            await asyncio.sleep(0.05)

    async def post(self, service: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        response = await self._send(service, "POST", path, read=False, json=dict(body or {}))
        return response.json() if response.content else None


SERVICE_LABELS = {"registry": "项目登记", "rectification": "问题整改", "inspection": "抽查",
                  "notifier": "提醒"}
