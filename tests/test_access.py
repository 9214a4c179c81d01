"""foodclf/access.py: roles from ID-token groups, what each role may do, sessions, and where the dashboard may serve."""

from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest

from foodclf.access import (
    NEEDS,
    NO_ACCESS,
    Role,
    allowed,
    check_dashboard_exposure,
    claim_groups,
    identity_from_claims,
    local_identity,
    require,
    session_expired,
)
from foodclf.errors import AccessDenied, SettingsError
from foodclf.settings import Settings, load_settings

MAPPED = Settings(admin_groups=("ml-leads",), moderator_groups=("mods", "support"), viewer_groups=("product",))

# The matrix the issue asks for: viewer = Stats, Browse; moderator = + queue, Classify, decisions;
# admin = + Export, Models (train, activate), audit log.
EXPECTED = {
    Role.VIEWER: {"stats", "browse"},
    Role.MODERATOR: {"stats", "browse", "review", "classify", "decide"},
    Role.ADMIN: set(NEEDS),
}


@pytest.mark.parametrize("role", list(Role))
def test_each_role_may_do_exactly_its_acts(role):
    assert {act for act in NEEDS if allowed(role, act)} == EXPECTED[role]


def test_no_role_may_do_nothing_and_an_unknown_act_is_a_mistake():
    assert not any(allowed(None, act) for act in NEEDS)
    with pytest.raises(ValueError, match="act: expected one of"):
        allowed(Role.ADMIN, "delete_everything")


@pytest.mark.parametrize(
    "groups, role",
    [
        (["product"], Role.VIEWER),
        (["support"], Role.MODERATOR),
        (["product", "ml-leads"], Role.ADMIN),  # the highest role wins
        ("mods", Role.MODERATOR),  # a string claim
        ("product, ml-leads", Role.ADMIN),  # a string of names
        (["/ml-leads"], None),  # Keycloak's full path is another name
        (["ML-LEADS"], None),  # names compare exactly
        (["interns"], None),  # an unknown group
        ([], None),
        (None, None),  # no claim at all
        ([["ml-leads"]], None),  # junk in the claim
        (42, None),
    ],
)
def test_roles_come_from_the_groups_claim(groups, role):
    claims = {"email": "kim@acme.com", "sub": "u1"} | ({} if groups is None else {"groups": groups})
    assert identity_from_claims(claims, MAPPED).role == role


def test_the_claim_name_is_a_setting():
    settings = MAPPED.replace(role_claim="roles")
    assert (
        identity_from_claims({"sub": "u1", "roles": ["mods"], "groups": ["ml-leads"]}, settings).role is Role.MODERATOR
    )
    # A provider without groups (Google): people mapped one by one by email.
    by_email = Settings(role_claim="email", admin_groups=("lee@acme.com",))
    assert identity_from_claims({"sub": "1", "email": "lee@acme.com"}, by_email).role is Role.ADMIN
    assert identity_from_claims({"sub": "2", "email": "eve@acme.com"}, by_email).role is None


def test_groups_settings_are_read_from_the_environment():
    settings = load_settings(
        {"FOODCLF_ADMIN_GROUPS": "a, b", "FOODCLF_ROLE_CLAIM": "roles", "FOODCLF_SESSION_HOURS": "1.5"}
    )
    assert (settings.admin_groups, settings.role_claim, settings.session_hours) == (("a", "b"), "roles", 1.5)
    assert claim_groups({"roles": "a b,c"}, "roles") == ("a", "b", "c")
    with pytest.raises(SettingsError, match="FOODCLF_SESSION_HOURS must be 0 or more"):
        load_settings({"FOODCLF_SESSION_HOURS": "-1"})


@pytest.mark.parametrize(
    "claims, name",
    [
        ({"email": "kim@acme.com", "sub": "u1", "name": "Kim"}, "kim@acme.com"),  # email, not the display name
        ({"sub": "248289761001"}, "248289761001"),  # no email: the subject
        ({"email": "", "sub": "u2"}, "u2"),
        ({"email": " \u200b ", "sub": "u3"}, "u3"),  # nothing visible
    ],
)
def test_the_recorded_name_is_the_email_else_the_subject(claims, name):
    assert identity_from_claims(claims | {"groups": ["mods"]}, MAPPED).name == name


def test_a_token_with_no_email_and_no_subject_gets_no_role():
    assert identity_from_claims({"groups": ["ml-leads"]}, MAPPED).role is None


def test_without_sign_in_the_local_user_is_admin():
    me = local_identity(Settings(reviewer="dev"))
    assert (me.name, me.role, me.local) == ("dev", Role.ADMIN, True)


def test_require_explains_the_refusal():
    viewer = identity_from_claims({"sub": "u", "groups": ["product"]}, MAPPED)
    with pytest.raises(AccessDenied, match=r"Your role \(viewer\) does not include exporting labels, which needs"):
        require(viewer, "export")
    require(viewer, "stats")
    with pytest.raises(AccessDenied, match="You have no access to foodclf yet"):
        require(identity_from_claims({"sub": "u", "groups": ["x"]}, MAPPED), "stats")
    assert "Ask an admin" in NO_ACCESS


@pytest.mark.parametrize(
    "claims, hours, expired",
    [
        ({"iat": time.time() - 60}, 12, False),
        ({"iat": time.time() - 13 * 3600}, 12, True),
        ({"iat": time.time() - 13 * 3600}, 0, False),  # 0: no limit of ours
        ({}, 12, True),  # every ID token has iat: none is a forgery or a broken provider
        ({"iat": "yesterday"}, 12, True),
        ({"iat": True}, 12, True),
        ({"iat": time.time() + 3600}, 12, True),  # issued in the future
    ],
)
def test_a_sign_in_expires_after_the_session_hours(claims, hours, expired):
    assert session_expired(claims, Settings(session_hours=hours)) is expired


def test_expiry_counts_from_the_issue_time():
    issued = datetime(2026, 1, 1, tzinfo=timezone.utc).timestamp()
    settings = Settings(session_hours=2)
    assert not session_expired({"iat": issued}, settings, now=datetime(2026, 1, 1, 1, 59, tzinfo=timezone.utc))
    assert session_expired({"iat": issued}, settings, now=datetime(2026, 1, 1, 2, 1, tzinfo=timezone.utc))


@pytest.mark.parametrize("address", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_loopback_is_served_without_sign_in(address):
    check_dashboard_exposure(address, signin_configured=False)


@pytest.mark.parametrize("address", ["0.0.0.0", "::", "192.168.1.20", "my-laptop", "", None])
def test_another_address_without_sign_in_is_refused_with_what_to_do(address):
    with pytest.raises(SettingsError) as refused:
        check_dashboard_exposure(address, signin_configured=False)
    message = str(refused.value)
    assert message.startswith(f"Refusing to serve the dashboard on {address or 'every network interface'} without")
    assert ".streamlit/secrets.toml" in message and "[auth]" in message and "docs/auth.md" in message
    assert "make run" in message
    check_dashboard_exposure(address, signin_configured=True)  # with sign-in it may
