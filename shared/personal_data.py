"""Personal data (个人信息保护法, DOMAIN.md §8): phone rules, masking, and crypto-shredding.

Names, addresses and phones of older people, and officials' phones, never enter the event log in
clear. Each data subject (a household, a liaison) has its own 256-bit key; a personal field is
sealed with AES-GCM under that key and the ciphertext (text) is what events carry. Erasing the
subject destroys the key, so every copy of its ciphertext, in the log, in exports, in backups of
events, becomes unreadable while the audit trail stays intact and verifiable.

The crypto is synchronous and pure given the keys (`Keyring`), so domain code can seal fields
without I/O; a `PersonalDataVault` only fetches or creates keys and erases them.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Annotated, Any, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import AfterValidator

from shared.errors import LookbackError

if TYPE_CHECKING:  # typing only: this module imports without asyncpg
    import asyncpg

    from shared.settings import Settings

ERASED = "[erased]"
SEALED_PREFIX = "pii1."

# Mainland mobile numbers: 11 digits, 1 then 3-9 (13x … 19x).
MOBILE_PATTERN = re.compile(r"1[3-9]\d{9}")
# Office (landline) numbers: area code 0 + 2-3 digits, 7-8 digit number, optional extension.
OFFICE_PHONE_PATTERN = re.compile(r"0\d{2,3}-\d{7,8}(?:-\d{1,6})?")
_SEPARATORS = re.compile(r"[\s\-－—()（）]+")
_CN_PREFIX = re.compile(r"^(?:\+86|0086|86)(?=1[3-9]\d{9}$)")


class SubjectErasedError(LookbackError):
    """New personal data for an erased subject: erasure is for good; use a new subject id."""


class UnknownSubjectError(LookbackError):
    """No key exists for this subject (it was never created)."""


# ----- phones -------------------------------------------------------------------------------------


def normalise_phone(raw: str) -> str:
    """Tidy a phone number as people type it: `+86 138 0000 0001` → `13800000001`,
    `(0711)1234567` / `0711 1234567` → `0711-1234567`. Unrecognisable input comes back stripped."""
    text = raw.strip()
    compact = _SEPARATORS.sub("", text)
    compact = _CN_PREFIX.sub("", compact)
    if MOBILE_PATTERN.fullmatch(compact):
        return compact
    if OFFICE_PHONE_PATTERN.fullmatch(text):
        return text
    # Landline without the hyphen: split after a known-length area code (3 digits for 010/02x).
    parts = [p for p in re.split(r"[\s\-－—()（）]+", text) if p]
    if len(parts) in (2, 3) and all(p.isdigit() for p in parts):
        candidate = "-".join(parts)
        if OFFICE_PHONE_PATTERN.fullmatch(candidate):
            return candidate
    if compact.isdigit() and compact.startswith("0") and len(compact) in (10, 11, 12):
        area_length = 3 if compact[1] in "12" else 4
        candidate = f"{compact[:area_length]}-{compact[area_length:]}"
        if OFFICE_PHONE_PATTERN.fullmatch(candidate):
            return candidate
    return text


def is_mobile(number: str) -> bool:
    return MOBILE_PATTERN.fullmatch(number) is not None


def is_office_phone(number: str) -> bool:
    return OFFICE_PHONE_PATTERN.fullmatch(number) is not None


def mobile_problem(raw: str) -> str | None:
    """Why `raw` is not a valid mainland mobile number, or None if it is (after normalising)."""
    number = normalise_phone(raw)
    if is_mobile(number):
        return None
    return "not a valid mainland mobile number (11 digits starting 13-19, e.g. 13800000001)"


def phone_problem(raw: str) -> str | None:
    """Why `raw` is neither a mobile nor an office number (`0711-1234567`), or None."""
    number = normalise_phone(raw)
    if is_mobile(number) or is_office_phone(number):
        return None
    return "not a valid phone number (mobile 1[3-9] + 9 digits, or office like 0711-1234567)"


# What looks like a person's phone or ID number inside a sentence (digits may be spaced or dashed).
_PHONE_IN_TEXT = re.compile(r"(?<!\d)1[3-9]\d(?:[\s\-]?\d){8}(?!\d)")
_LANDLINE_IN_TEXT = re.compile(r"(?<!\d)0\d{2,3}[\s\-]?\d{7,8}(?!\d)")
_ID_NUMBER_IN_TEXT = re.compile(r"(?<!\d)\d{17}[\dXx](?![\dXx])")


def personal_data_in_text(text: str) -> str | None:
    """Why a free-text field must not be stored as it is (a phone or ID number in it), or None.

    Free text (a problem's description, evidence, a reason) is kept in clear in the signed,
    append-only log and printed on lists people share; personal data there could never be erased
    (docs/adr/0009). A person is named in such text by role or household code instead."""
    if _ID_NUMBER_IN_TEXT.search(text):
        return "contains what looks like an ID card number: refer to the person by household code"
    if _PHONE_IN_TEXT.search(text) or _LANDLINE_IN_TEXT.search(text):
        return "contains what looks like a phone number: contact details belong in the liaison list"
    return None


def _no_personal_data(text: str) -> str:
    reason = personal_data_in_text(text)
    if reason is not None:
        raise ValueError(reason)
    return text


# A free-text field of a command: any text, but no phone or ID number (see above).
FreeText = Annotated[str, AfterValidator(_no_personal_data)]


def mask_phone(number: str) -> str:
    """`13812341234` → `138****1234`; `0711-1234567` → `0711-***4567`; anything else keeps only
    its last 4 characters."""
    number = normalise_phone(number)
    if is_mobile(number):
        return f"{number[:3]}****{number[-4:]}"
    if is_office_phone(number):
        area, local, *extension = number.split("-")
        masked = f"{area}-{'*' * (len(local) - 4)}{local[-4:]}"
        return masked + (f"-{extension[0]}" if extension else "")
    if len(number) <= 4:
        return "*" * len(number)
    return "*" * (len(number) - 4) + number[-4:]


def mask_name(name: str) -> str:
    """`张三` → `张*`, `欧阳娜娜` → `欧***`: enough to recognise, not to identify."""
    name = name.strip()
    if len(name) <= 1:
        return "*" if name else ""
    return name[0] + "*" * (len(name) - 1)


# ----- sealing ------------------------------------------------------------------------------------


class Sealer(Protocol):
    """What domain code needs to put a personal field into an event."""

    def seal(self, subject_id: str, field: str, plaintext: str) -> str: ...


def new_subject_key() -> bytes:
    return os.urandom(32)


def _subkey(key: bytes, label: bytes) -> bytes:
    # HMAC-SHA256 as a KDF over a uniformly random key: separate keys for encryption and nonces.
    return hmac.new(key, b"lookback-pii|" + label, hashlib.sha256).digest()


def _associated_data(subject_id: str, field: str) -> bytes:
    # Binds a ciphertext to its subject and field: it cannot be pasted under another person.
    return f"lookback-pii|{subject_id}|{field}".encode()


class Keyring:
    """Keys of a few subjects, in memory, for synchronous sealing and opening.

    `keys[subject] is None` means the subject is erased. With `generate_missing`, an unknown
    subject gets a fresh key on first seal (in-memory vault and tests).
    """

    def __init__(self, keys: Mapping[str, bytes | None] | None = None, *,
                 generate_missing: bool = False) -> None:
        self._keys: dict[str, bytes | None] = dict(keys or {})
        self._generate_missing = generate_missing

    @property
    def subject_ids(self) -> frozenset[str]:
        return frozenset(self._keys)

    def generated_keys(self) -> dict[str, bytes]:
        """Keys held for subjects that are not erased (a vault persists the ones it created)."""
        return {subject: key for subject, key in self._keys.items() if key is not None}

    def is_erased(self, subject_id: str) -> bool:
        return subject_id in self._keys and self._keys[subject_id] is None

    def _key_for_sealing(self, subject_id: str) -> bytes:
        if subject_id not in self._keys:
            if not self._generate_missing:
                raise UnknownSubjectError(f"no key for subject {subject_id}")
            self._keys[subject_id] = new_subject_key()
        key = self._keys[subject_id]
        if key is None:
            raise SubjectErasedError(f"subject {subject_id} is erased; register it under a new subject id")
        return key

    def seal(self, subject_id: str, field: str, plaintext: str) -> str:
        """Encrypt one field. Deterministic for (subject, field, plaintext): a retried command
        produces byte-identical events, so idempotent appends and content ids keep working.

        The nonce is synthetic (an HMAC of field and plaintext under a key derived from the
        subject's key), so AES-GCM never sees one nonce with two different plaintexts.
        """
        key = self._key_for_sealing(subject_id)
        data = plaintext.encode("utf-8")
        nonce = hmac.new(_subkey(key, b"nonce"), field.encode() + b"\x00" + data,
                         hashlib.sha256).digest()[:12]
        ciphertext = AESGCM(_subkey(key, b"enc")).encrypt(nonce, data, _associated_data(subject_id, field))
        return SEALED_PREFIX + base64.urlsafe_b64encode(nonce + ciphertext).decode("ascii")

    def open(self, subject_id: str, field: str, sealed: str | None) -> str | None:
        """The clear value, or None when the subject is erased or unknown (or nothing was sealed)."""
        if sealed is None:
            return None
        key = self._keys.get(subject_id)
        if key is None:
            return None
        if not sealed.startswith(SEALED_PREFIX):
            raise ValueError("not a sealed personal field")
        blob = base64.urlsafe_b64decode(sealed[len(SEALED_PREFIX):].encode("ascii"))
        nonce, ciphertext = blob[:12], blob[12:]
        try:
            data = AESGCM(_subkey(key, b"enc")).decrypt(nonce, ciphertext,
                                                        _associated_data(subject_id, field))
        except InvalidTag as exc:
            raise ValueError(f"sealed {field} does not belong to subject {subject_id} "
                             "or was altered") from exc
        return data.decode("utf-8")

    def reveal(self, subject_id: str, field: str, sealed: str | None) -> str:
        """For display: the clear value, or `[erased]` once the subject is erased."""
        value = self.open(subject_id, field, sealed)
        if value is None:
            return ERASED if sealed is not None else ""
        return value


def is_sealed(value: str) -> bool:
    return value.startswith(SEALED_PREFIX)


# ----- vaults -------------------------------------------------------------------------------------


class PersonalDataVault(Protocol):
    """Where subject keys live. Erasing a subject destroys its key for good."""

    async def keyring(self, subject_ids: Iterable[str], *, create: bool = False,
                      conn: Any = None) -> Keyring:
        """Keys of these subjects (None for erased ones). With `create`, missing subjects get a
        new key first; an erased subject is never given a new one. With `conn`, inside that
        connection's transaction (a command's: its refusal leaves no key behind)."""
        ...

    async def erase(self, subject_id: str) -> bool:
        """Destroy the subject's key; True if a key existed and is now gone. Idempotent."""
        ...

    async def is_erased(self, subject_id: str) -> bool: ...

    async def seal(self, subject_id: str, field: str, plaintext: str) -> str: ...

    async def open(self, subject_id: str, field: str, sealed: str | None) -> str | None: ...


class _VaultConveniences:
    async def keyring(self, subject_ids: Iterable[str], *, create: bool = False,
                      conn: Any = None) -> Keyring:
        raise NotImplementedError

    async def seal(self, subject_id: str, field: str, plaintext: str) -> str:
        ring = await self.keyring([subject_id], create=True)
        return ring.seal(subject_id, field, plaintext)

    async def open(self, subject_id: str, field: str, sealed: str | None) -> str | None:
        ring = await self.keyring([subject_id])
        return ring.open(subject_id, field, sealed)

    async def reveal(self, subject_id: str, field: str, sealed: str | None) -> str:
        ring = await self.keyring([subject_id])
        return ring.reveal(subject_id, field, sealed)


class InMemoryPersonalDataVault(_VaultConveniences):
    """For unit tests and the local transport; keys vanish with the process."""

    def __init__(self) -> None:
        self._keys: dict[str, bytes | None] = {}

    async def keyring(self, subject_ids: Iterable[str], *, create: bool = False,
                      conn: Any = None) -> Keyring:
        wanted = list(dict.fromkeys(subject_ids))
        if create:
            for subject in wanted:
                self._keys.setdefault(subject, new_subject_key())
        return Keyring({s: self._keys[s] for s in wanted if s in self._keys})

    async def erase(self, subject_id: str) -> bool:
        had_key = self._keys.get(subject_id) is not None
        self._keys[subject_id] = None
        return had_key

    async def is_erased(self, subject_id: str) -> bool:
        return subject_id in self._keys and self._keys[subject_id] is None


class MasterKey:
    """The key that wraps every subject key before it is stored: held outside the database (a
    file or a secret the registry process reads), so a copy of the database alone — keys and
    ciphertext together — opens no personal field. AES-GCM with the subject id as associated
    data, so a wrapped key cannot be moved to another subject's row."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("the personal-data master key is 32 bytes (base64 of 32 random bytes)")
        self._aead = AESGCM(key)
        # Names the key without revealing it, so a later rotation knows what wrapped each row.
        self.key_id = hashlib.sha256(b"lookback-pii-master|" + key).hexdigest()[:16]

    @classmethod
    def from_text(cls, text: str) -> MasterKey:
        try:
            return cls(base64.b64decode(text.strip(), validate=True))
        except (ValueError, TypeError) as exc:
            raise ValueError(f"not a personal-data master key: {exc}") from None

    @classmethod
    def from_settings(cls, settings: Settings) -> MasterKey:
        text = settings.pii_master_key_text()
        if text is None:
            raise RuntimeError("personal data needs its master key: set LOOKBACK_PII_MASTER_KEY_FILE "
                               "(base64 of 32 random bytes, kept outside the database)")
        return cls.from_text(text)

    @staticmethod
    def generate_text() -> str:
        return base64.b64encode(os.urandom(32)).decode("ascii")

    def wrap(self, subject_id: str, key: bytes) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, key, _wrap_context(subject_id))

    def unwrap(self, subject_id: str, wrapped: bytes) -> bytes:
        try:
            return self._aead.decrypt(wrapped[:12], wrapped[12:], _wrap_context(subject_id))
        except InvalidTag as exc:
            raise ValueError(f"the key of subject {subject_id} was not wrapped by this master key "
                             "(or was moved or altered)") from exc


def _wrap_context(subject_id: str) -> bytes:
    return f"lookback-pii-wrap|{subject_id}".encode()


class PostgresPersonalDataVault(_VaultConveniences):
    """Keys in `pii.subject_keys` (migration 0010), each wrapped by the master key; use a pool
    logged in as `lookback_registry` (no other role may read the table)."""

    def __init__(self, pool: asyncpg.Pool, master: MasterKey) -> None:
        self.pool = pool
        self.master = master

    async def keyring(self, subject_ids: Iterable[str], *, create: bool = False,
                      conn: Any = None) -> Keyring:
        wanted = list(dict.fromkeys(subject_ids))
        if not wanted:
            return Keyring()
        if conn is None:
            async with self.pool.acquire() as acquired:
                return await self.keyring(wanted, create=create, conn=acquired)
        if create:
            # ON CONFLICT DO NOTHING: an existing key (or an erasure) always wins.
            await conn.execute(
                "INSERT INTO pii.subject_keys (subject_id, key, wrapped_by) "
                "SELECT s, k, $3 FROM unnest($1::text[], $2::bytea[]) AS u(s, k) "
                "ON CONFLICT (subject_id) DO NOTHING",
                wanted, [self.master.wrap(subject, new_subject_key()) for subject in wanted],
                self.master.key_id)
        rows = await conn.fetch(
            "SELECT subject_id, key FROM pii.subject_keys WHERE subject_id = ANY($1::text[])", wanted)
        return Keyring({row["subject_id"]: (None if row["key"] is None else
                                            self.master.unwrap(row["subject_id"], bytes(row["key"])))
                        for row in rows})

    async def erase(self, subject_id: str) -> bool:
        async with self.pool.acquire() as conn:
            # An unknown subject is recorded as erased too, so it can never be given a key later.
            row = await conn.fetchrow(
                """INSERT INTO pii.subject_keys AS k (subject_id, key, erased_at)
                   VALUES ($1, NULL, clock_timestamp())
                   ON CONFLICT (subject_id) DO UPDATE SET key = NULL, erased_at = clock_timestamp()
                       WHERE k.erased_at IS NULL
                   RETURNING (xmax <> 0) AS had_key""",
                subject_id)
        return bool(row and row["had_key"])

    async def is_erased(self, subject_id: str) -> bool:
        async with self.pool.acquire() as conn:
            erased_at = await conn.fetchval(
                "SELECT erased_at FROM pii.subject_keys WHERE subject_id = $1", subject_id)
        return erased_at is not None
