"""Phones, masking and crypto-shredding of personal fields (DOMAIN.md §8)."""
from __future__ import annotations

import asyncpg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.personal_data import (
    ERASED,
    MasterKey,
    InMemoryPersonalDataVault,
    Keyring,
    PersonalDataVault,
    PostgresPersonalDataVault,
    SubjectErasedError,
    UnknownSubjectError,
    is_sealed,
    mask_name,
    mask_phone,
    mobile_problem,
    normalise_phone,
    phone_problem,
)
from shared.store import create_pool

MASTER = MasterKey(bytes(range(32)))  # a test's master key, never a real one


# ----- phones and masking (pure) ---------------------------------------------------------------------


@pytest.mark.unit
@pytest.mark.parametrize("raw", ["13800000001", "19912345678", "+86 138 0000 0001", "138-0000-0001",
                                 "8613800000001"])
def test_mainland_mobile_numbers_are_accepted_after_tidying(raw: str) -> None:
    assert mobile_problem(raw) is None
    assert len(normalise_phone(raw)) == 11


@pytest.mark.unit
@pytest.mark.parametrize("raw", ["12800000001", "1380000000", "138000000012", "0711-1234567", "abc", ""])
def test_anything_else_is_not_a_mobile_number(raw: str) -> None:
    assert mobile_problem(raw) is not None


@pytest.mark.unit
@pytest.mark.parametrize("raw,tidy", [("0711-1234567", "0711-1234567"), ("(0711)1234567", "0711-1234567"),
                                      ("0711 1234567", "0711-1234567"), ("027-60896827", "027-60896827"),
                                      ("0711-12345678-801", "0711-12345678-801")])
def test_office_phones_with_area_code_are_accepted(raw: str, tidy: str) -> None:
    assert phone_problem(raw) is None
    assert normalise_phone(raw) == tidy


@pytest.mark.unit
def test_phones_are_masked_keeping_the_ends() -> None:
    assert mask_phone("13812341234") == "138****1234"
    assert mask_phone("+86 138 1234 1234") == "138****1234"
    assert mask_phone("0711-1234567") == "0711-***4567"
    assert mask_phone("12") == "**"
    assert mask_name("张三") == "张*" and mask_name("欧阳娜娜") == "欧***"


@pytest.mark.unit
@settings(max_examples=150, deadline=None)
@given(st.from_regex(r"1[3-9][0-9]{9}", fullmatch=True))
def test_a_masked_mobile_never_shows_the_middle_four_digits(number: str) -> None:
    masked = mask_phone(number)
    assert masked[3:7] == "****" and masked[:3] == number[:3] and masked[-4:] == number[-4:]


# ----- sealing (pure) -----------------------------------------------------------------------------------


@pytest.mark.unit
def test_a_sealed_field_opens_only_for_its_subject_and_field() -> None:
    ring = Keyring(generate_missing=True)
    sealed = ring.seal("household-1", "name", "王某某(示例)")
    ring.seal("household-2", "name", "other")
    assert is_sealed(sealed) and "王" not in sealed
    assert ring.open("household-1", "name", sealed) == "王某某(示例)"
    with pytest.raises(ValueError, match="does not belong"):
        ring.open("household-1", "address", sealed)
    with pytest.raises(ValueError, match="does not belong"):
        ring.open("household-2", "name", sealed)


@pytest.mark.unit
def test_sealing_is_deterministic_so_a_retried_command_yields_the_same_event() -> None:
    ring = Keyring(generate_missing=True)
    assert ring.seal("s", "phone", "13800000001") == ring.seal("s", "phone", "13800000001")
    assert ring.seal("s", "phone", "13800000001") != ring.seal("s", "phone", "13800000002")
    assert ring.seal("s", "phone", "13800000001") != ring.seal("s", "mobile", "13800000001")


@pytest.mark.unit
def test_a_keyring_without_a_key_refuses_to_seal() -> None:
    with pytest.raises(UnknownSubjectError):
        Keyring().seal("nobody", "name", "x")
    erased = Keyring({"gone": None})
    with pytest.raises(SubjectErasedError):
        erased.seal("gone", "name", "x")
    assert erased.reveal("gone", "name", "pii1.AAAA") == ERASED


@pytest.mark.unit
def test_an_altered_ciphertext_is_detected() -> None:
    ring = Keyring(generate_missing=True)
    sealed = ring.seal("s", "name", "李某(示例)")
    tampered = sealed[:-4] + ("AAAA" if sealed[-4:] != "AAAA" else "BBBB")
    with pytest.raises(ValueError):
        ring.open("s", "name", tampered)


# ----- vault contract: in memory and PostgreSQL ------------------------------------------------------


class VaultContract:
    """Every vault behaves the same; the in-memory one may stand in for PostgreSQL in unit tests."""

    async def test_vault_round_trips_a_sealed_field(self, vault: PersonalDataVault) -> None:
        sealed = await vault.seal("subject-a", "phone", "13800000001")
        assert "13800000001" not in sealed
        assert await vault.open("subject-a", "phone", sealed) == "13800000001"
        ring = await vault.keyring(["subject-a", "subject-unknown"])
        assert ring.open("subject-a", "phone", sealed) == "13800000001"
        assert ring.open("subject-unknown", "phone", sealed) is None

    async def test_vault_keeps_one_key_per_subject(self, vault: PersonalDataVault) -> None:
        first = await vault.keyring(["s1", "s2"], create=True)
        again = await vault.keyring(["s1", "s2", "s3"], create=True)
        sealed = first.seal("s1", "name", "赵某(示例)")
        assert again.open("s1", "name", sealed) == "赵某(示例)"
        assert first.generated_keys()["s1"] == again.generated_keys()["s1"]
        assert first.generated_keys()["s1"] != again.generated_keys()["s2"]

    async def test_erasing_a_subject_makes_its_ciphertext_unreadable_for_good(self, vault: PersonalDataVault) -> None:
        name = await vault.seal("subject-b", "name", "周某某(示例)")
        other = await vault.seal("subject-c", "name", "吴某(示例)")

        assert await vault.erase("subject-b") is True
        assert await vault.erase("subject-b") is False  # idempotent
        assert await vault.is_erased("subject-b")
        assert await vault.open("subject-b", "name", name) is None
        ring = await vault.keyring(["subject-b", "subject-c"], create=True)
        assert ring.reveal("subject-b", "name", name) == ERASED
        assert ring.open("subject-c", "name", other) == "吴某(示例)"  # others untouched
        with pytest.raises(SubjectErasedError):
            ring.seal("subject-b", "name", "周某某(示例)")
        with pytest.raises(SubjectErasedError):
            await vault.seal("subject-b", "name", "again")

    async def test_erasing_an_unknown_subject_blocks_any_later_key(self, vault: PersonalDataVault) -> None:
        assert await vault.erase("never-seen") is False
        assert await vault.is_erased("never-seen")
        with pytest.raises(SubjectErasedError):
            await vault.seal("never-seen", "name", "x")


class TestInMemoryVault(VaultContract):
    pytestmark = pytest.mark.unit

    @pytest.fixture
    def vault(self) -> PersonalDataVault:
        return InMemoryPersonalDataVault()


class TestPostgresVault(VaultContract):
    pytestmark = pytest.mark.integration

    @pytest.fixture
    async def vault(self, database: str):
        pool = await create_pool(database, role="lookback_registry", max_size=2)
        try:
            yield PostgresPersonalDataVault(pool, MASTER)
        finally:
            await pool.close()


# ----- PostgreSQL specifics -------------------------------------------------------------------------------


@pytest.mark.integration
async def test_registry_role_cannot_delete_or_replace_keys(database: str) -> None:
    pool = await create_pool(database, role="lookback_registry", max_size=1)
    try:
        vault = PostgresPersonalDataVault(pool, MASTER)
        await vault.keyring(["s"], create=True)
        async with pool.acquire() as conn:
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute("DELETE FROM pii.subject_keys WHERE subject_id = 's'")
            with pytest.raises(asyncpg.PostgresError, match="cannot be replaced"):
                await conn.execute("UPDATE pii.subject_keys SET key = $1 WHERE subject_id = 's'", b"k" * 32)
        await vault.erase("s")
        async with pool.acquire() as conn:
            with pytest.raises(asyncpg.PostgresError, match="erased for good"):
                await conn.execute("UPDATE pii.subject_keys SET key = $1, erased_at = NULL "
                                   "WHERE subject_id = 's'", b"k" * 32)
            row = await conn.fetchrow("SELECT key, erased_at FROM pii.subject_keys WHERE subject_id = 's'")
        assert row["key"] is None and row["erased_at"] is not None
    finally:
        await pool.close()


@pytest.mark.integration
async def test_other_service_roles_cannot_read_personal_data_keys(database: str) -> None:
    pool = await create_pool(database, role="lookback_inspection", max_size=1)
    try:
        async with pool.acquire() as conn:
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.fetch("SELECT * FROM pii.subject_keys")
    finally:
        await pool.close()


@pytest.mark.integration
async def test_a_copy_of_the_database_alone_opens_no_personal_field(database: str) -> None:
    pool = await create_pool(database, role="lookback_registry", max_size=1)
    try:
        vault = PostgresPersonalDataVault(pool, MASTER)
        sealed = await vault.seal("subject-1", "name", "王某某(示例)")
        async with pool.acquire() as conn:
            stored = await conn.fetchrow(
                "SELECT key, wrapped_by FROM pii.subject_keys WHERE subject_id = 'subject-1'")
        assert stored["wrapped_by"] == MASTER.key_id and len(stored["key"]) == 60
        # The stored bytes are not the key: used as one, they open nothing.
        thief = Keyring({"subject-1": bytes(stored["key"])[12:44]})
        with pytest.raises(ValueError):
            thief.open("subject-1", "name", sealed)
        # Another master key (another deployment's, or a guess) cannot unwrap it either.
        with pytest.raises(ValueError, match="not wrapped by this master key"):
            await PostgresPersonalDataVault(pool, MasterKey(bytes(32))).open("subject-1", "name", sealed)
        assert await vault.open("subject-1", "name", sealed) == "王某某(示例)"
    finally:
        await pool.close()


@pytest.mark.unit
def test_a_wrapped_key_cannot_be_moved_to_another_subject() -> None:
    wrapped = MASTER.wrap("subject-a", b"k" * 32)
    assert MASTER.unwrap("subject-a", wrapped) == b"k" * 32
    with pytest.raises(ValueError):
        MASTER.unwrap("subject-b", wrapped)
