"""A real browser for the console's tests: Debian's Chromium driven by Playwright (never a browser
that Playwright downloads itself: none can be fetched here), one per test module, a fresh context
(cookies, viewport) per person, and every request the pages make written down."""
from __future__ import annotations

import re
import struct
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, BrowserContext, Page, async_playwright

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync",
        "--disable-default-apps", "--disable-extensions", "--lang=zh-CN"]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
PHONE_NUMBER = re.compile(r"(?<!\d)1[3-9]\d[\d*]{4}\d{4}(?!\d)")


@dataclass
class Browsing:
    browser: Browser
    requests: list[str] = field(default_factory=list)

    @asynccontextmanager
    async def person(self, console_url: str, account: str | None, password: str = "", *,
                     viewport: dict[str, int] | None = None, mobile: bool = False
                     ) -> AsyncIterator[Page]:
        """A page in a fresh context, signed in as `account` through the sign-in form (or nobody)."""
        context: BrowserContext = await self.browser.new_context(
            viewport=viewport or DESKTOP, is_mobile=mobile, has_touch=mobile, locale="zh-CN",
            timezone_id="Asia/Shanghai", service_workers="block")
        context.on("request", lambda request: self.requests.append(request.url))
        page = await context.new_page()
        page.set_default_timeout(20_000)
        try:
            if account is not None:
                await sign_in(page, console_url, account, password)
            yield page
        finally:
            await context.close()

    def foreign(self, *origins: str) -> list[str]:
        """Every request that went anywhere but our own origins (data: URLs are the page's own)."""
        return [url for url in self.requests
                if not url.startswith(("data:", "about:", "blob:"))
                and not any(url.startswith(origin + "/") or url == origin for origin in origins)]


@asynccontextmanager
async def chromium() -> AsyncIterator[Browsing]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS,
                                                   headless=True)
        try:
            yield Browsing(browser)
        finally:
            await browser.close()


async def sign_in(page: Page, console_url: str, account: str, password: str) -> None:
    await page.goto(f"{console_url}/login")
    await page.fill("input[name=username]", account)
    await page.fill("input[name=password]", password)
    await page.click("button[type=submit]")
    await page.wait_for_url(re.compile(r"^(?!.*/login).*$"))


async def shot(page: Page, name: str, *, full_page: bool = True) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=full_page)
    return path


def png(shade: int) -> bytes:
    """A small real PNG (a 48×32 block of one colour): distinct shades, distinct files."""
    width, height = 48, 32
    row = b"\x00" + bytes((shade % 256, (shade * 7) % 256, 120)) * width
    raw = row * height

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


async def csrf_of(page: Page) -> Any:
    return await page.get_attribute("input[name=csrf]", "value")
