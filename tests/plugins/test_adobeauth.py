"""The adobeauth plugin: the Adobe and Limelight challenge exchanges, hook by hook (no server).

Each connect is built the way the server builds a client's view (the app name and its query
split by :func:`fms.rtmp.connection.split_query`), and every expected answer is computed here
with hashlib and base64, from the challenge the plugin sent, as FFmpeg's client computes it.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from pathlib import Path
from typing import Any

import pytest
from fms.plugins.adobeauth import AdobeAuth
from zope.interface.verify import verifyObject

from fms.apps.api import Reject
from fms.apps.interfaces import IApplication
from fms.apps.loader import build
from fms.apps.views import ClientView
from fms.config import PluginSpec
from fms.errors import ConfigError
from fms.rtmp.connection import split_query

NOW = 1_700_000_000.0
TTL = 60.0
USERS = {"alice": "secret1", "bob": "p4ss"}
NEED_AUTH_ADOBE = "[ AccessManager.Reject ] : [ code=403 need auth; authmod=adobe ] : "
NEED_AUTH_LLNW = "[ AccessManager.Reject ] : [ code=403 need auth; authmod=llnw ] : "
REFUSAL = re.compile(r"\[ AccessManager\.Reject \] : \[ authmod=(\w+) \] : \?(.*)")


class Clock:
    """The plugin's clock: Unix seconds that a test moves by hand."""

    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


class NoLink:
    """A ClientView's connection, never used by the plugin."""

    def streams(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        return (), ()

    def invoke(self, method: str, args: tuple[Any, ...], expect_result: bool) -> float | None:
        return None

    def close(self, reason: str) -> None:
        pass

    application = None


def client(
    query: str = "", *, app: str = "live", host: str = "127.0.0.1", publisher: bool = True
) -> ClientView:
    """The view of a client that connected to ``app`` + ``query`` (FFmpeg appends the same
    query to the app name and the tcUrl); ``publisher``: it announced type 'nonprivate'."""
    params: dict[str, Any] = {"app": app + query, "tcUrl": f"rtmp://media.example/{app}{query}"}
    if publisher:
        params["type"] = "nonprivate"
    name, parsed = split_query(params["app"])
    return ClientView(
        NoLink(), peer=f"{host}:50000", host=host, app=name.strip("/"),
        tc_url=params["tcUrl"], params=params, query=parsed,
    )  # fmt: skip


def plugin(clock: Clock | None = None, **options: Any) -> AdobeAuth:
    options.setdefault("users", USERS)
    options.setdefault("challenge_ttl", TTL)
    return AdobeAuth(clock=clock or Clock(), **options)


def refusal(decision: Any) -> tuple[str, dict[str, str]]:
    """(authmod, query) of a step-2/3 refusal, read the way FFmpeg reads it."""
    assert isinstance(decision, Reject), decision
    match = REFUSAL.fullmatch(decision.reason)
    assert match is not None, decision.reason
    return match.group(1), dict(pair.split("=", 1) for pair in match.group(2).split("&"))


def md5_b64(text: str) -> str:
    return base64.b64encode(hashlib.md5(text.encode()).digest()).decode()


def md5_hex(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def adobe_challenge(auth: AdobeAuth, user: str = "alice", **where: Any) -> dict[str, str]:
    decision = auth.connect(client(f"?authmod=adobe&user={user}", **where))
    authmod, query = refusal(decision)
    assert authmod == "adobe"
    return query


def adobe_answer(
    challenge: dict[str, str], password: str, client_challenge: str = "0badc0de", user: str = ""
) -> str:
    """Step 3's query, as FFmpeg builds it from the step-2 refusal."""
    user = user or challenge["user"]
    inner = md5_b64(user + challenge["salt"] + password)
    response = md5_b64(inner + challenge["opaque"] + client_challenge)
    return (
        f"?authmod=adobe&user={user}&challenge={client_challenge}&response={response}"
        f"&opaque={challenge['opaque']}"
    )


def llnw_answer(nonce: str, user: str, password: str, app: str = "live") -> str:
    ha1 = md5_hex(f"{user}:live:{password}")
    ha2 = md5_hex(f"publish:/{app}" + ("" if "/" in app else "/_definst_"))
    response = md5_hex(f"{ha1}:{nonce}:00000001:4e6f6e63:auth:{ha2}")
    return (
        f"?authmod=llnw&user={user}&nonce={nonce}&cnonce=4e6f6e63&nc=00000001&response={response}"
    )


# ------------------------------------------------------------------------ step 1: need auth


def test_a_publisher_without_credentials_is_told_to_log_in_with_adobe() -> None:
    assert plugin().connect(client()) == Reject(NEED_AUTH_ADOBE)


def test_the_first_of_authmods_is_the_one_offered() -> None:
    assert plugin(authmods=["llnw", "adobe"]).connect(client()) == Reject(NEED_AUTH_LLNW)


def test_with_scope_publish_a_player_connects_without_credentials() -> None:
    assert plugin().connect(client(publisher=False)) is None


def test_with_scope_publish_a_player_that_did_not_log_in_may_not_publish() -> None:
    auth = plugin()
    player = client(publisher=False)
    assert auth.connect(player) is None
    decision = auth.publish(player, "cam", {}, "live")
    assert isinstance(decision, Reject) and "needs a login" in decision.reason


def test_with_scope_all_a_player_must_log_in_too() -> None:
    assert plugin(scope="all").connect(client(publisher=False)) == Reject(NEED_AUTH_ADOBE)


def test_a_login_with_a_scheme_not_accepted_is_offered_the_accepted_one() -> None:
    auth = plugin(authmods=["adobe"])
    assert auth.connect(client("?authmod=llnw&user=alice")) == Reject(NEED_AUTH_ADOBE)


# ------------------------------------------------------------------------ authmod=adobe


def test_the_adobe_challenge_names_the_user_a_salt_a_challenge_and_an_opaque() -> None:
    challenge = adobe_challenge(plugin())
    assert list(challenge) == ["reason", "user", "salt", "challenge", "opaque"]
    assert challenge["reason"] == "needauth" and challenge["user"] == "alice"
    assert all(challenge[k] for k in ("salt", "challenge", "opaque"))


def test_the_adobe_challenge_fits_ffmpeg_s_256_byte_description_buffer() -> None:
    user = "a" * 49  # the longest user name FFmpeg sends
    decision = plugin(users={user: "x"}).connect(client(f"?authmod=adobe&user={user}"))
    assert isinstance(decision, Reject) and len(decision.reason.encode()) < 256


def test_the_right_adobe_answer_logs_in_and_may_publish() -> None:
    auth = plugin()
    answer = client(adobe_answer(adobe_challenge(auth), "secret1"))
    assert auth.connect(answer) is None
    assert auth.user_of(answer) == "alice"
    assert auth.publish(answer, "cam", {}, "live") is None


def test_a_wrong_password_is_refused_with_authfailed() -> None:
    auth = plugin()
    decision = auth.connect(client(adobe_answer(adobe_challenge(auth), "secret2")))
    assert refusal(decision) == ("adobe", {"reason": "authfailed"})


def test_another_user_s_password_is_refused() -> None:
    auth = plugin()
    decision = auth.connect(client(adobe_answer(adobe_challenge(auth), "p4ss")))
    assert refusal(decision) == ("adobe", {"reason": "authfailed"})


def test_an_unknown_user_is_challenged_like_a_known_one() -> None:
    known, unknown = adobe_challenge(plugin()), adobe_challenge(plugin(), user="mallory")
    assert list(unknown) == list(known)
    assert [len(v) for k, v in unknown.items() if k != "user"] == [
        len(v) for k, v in known.items() if k != "user"
    ]


def test_an_unknown_user_is_refused_exactly_like_a_wrong_password() -> None:
    auth = plugin()
    unknown = auth.connect(client(adobe_answer(adobe_challenge(auth, "mallory"), "secret1")))
    wrong = auth.connect(client(adobe_answer(adobe_challenge(auth), "nope")))
    assert (
        unknown
        == wrong
        == Reject("[ AccessManager.Reject ] : [ authmod=adobe ] : ?reason=authfailed")
    )


def test_a_response_with_a_plus_sign_is_read_as_the_client_wrote_it() -> None:
    """Base64 has '+', which a web-form reading of the query turns into a space."""
    auth = plugin()
    for n in range(200):
        challenge = adobe_challenge(auth)
        query = adobe_answer(challenge, "secret1", client_challenge=f"{n:08x}")
        if "+" in query.split("response=")[1].split("&")[0]:
            break
    else:
        pytest.fail("no response with a '+' in 200 tries")
    view = client(query)
    assert " " in view.query["response"]  # what the view alone would give
    assert auth.connect(view) is None


# ------------------------------------------------------------------------ authmod=llnw


def llnw_nonce(auth: AdobeAuth, user: str = "alice", app: str = "live") -> str:
    authmod, query = refusal(auth.connect(client(f"?authmod=llnw&user={user}", app=app)))
    assert authmod == "llnw" and list(query) == ["reason", "user", "nonce"]
    assert query["reason"] == "needauth" and query["user"] == user
    return query["nonce"]


def test_the_right_llnw_answer_logs_in() -> None:
    auth = plugin()
    answer = client(llnw_answer(llnw_nonce(auth), "alice", "secret1"))
    assert auth.connect(answer) is None
    assert auth.user_of(answer) == "alice"


def test_llnw_hashes_an_application_with_a_slash_without_definst() -> None:
    auth = plugin()
    nonce = llnw_nonce(auth, app="live/room1")
    answer = llnw_answer(nonce, "alice", "secret1", app="live/room1")
    assert auth.connect(client(answer, app="live/room1")) is None


def test_a_wrong_llnw_password_is_refused_with_authfailed() -> None:
    auth = plugin()
    decision = auth.connect(client(llnw_answer(llnw_nonce(auth), "alice", "secret2")))
    assert refusal(decision) == ("llnw", {"reason": "authfailed"})


def test_an_unknown_llnw_user_is_refused_like_a_wrong_password() -> None:
    auth = plugin()
    decision = auth.connect(client(llnw_answer(llnw_nonce(auth, "mallory"), "mallory", "x")))
    assert refusal(decision) == ("llnw", {"reason": "authfailed"})


# ------------------------------------------------------------------ single use and expiry


def test_a_replayed_answer_is_challenged_again() -> None:
    auth = plugin()
    challenge = adobe_challenge(auth)
    answer = adobe_answer(challenge, "secret1")
    assert auth.connect(client(answer)) is None
    authmod, again = refusal(auth.connect(client(answer)))
    assert (authmod, again["reason"]) == ("adobe", "needauth")
    assert again["opaque"] != challenge["opaque"]


def test_a_replayed_llnw_answer_is_challenged_again() -> None:
    auth = plugin()
    answer = llnw_answer(llnw_nonce(auth), "alice", "secret1")
    assert auth.connect(client(answer)) is None
    assert refusal(auth.connect(client(answer)))[1]["reason"] == "needauth"


def test_a_wrong_answer_uses_up_its_challenge() -> None:
    auth = plugin()
    challenge = adobe_challenge(auth)
    assert refusal(auth.connect(client(adobe_answer(challenge, "guess"))))[1]["reason"] == (
        "authfailed"
    )
    right = auth.connect(client(adobe_answer(challenge, "secret1", client_challenge="1")))
    assert refusal(right)[1]["reason"] == "needauth"


def test_a_challenge_is_still_good_just_before_challenge_ttl() -> None:
    clock = Clock()
    auth = plugin(clock)
    challenge = adobe_challenge(auth)
    clock.now += TTL - 0.002
    assert auth.connect(client(adobe_answer(challenge, "secret1"))) is None


def test_a_challenge_answered_challenge_ttl_after_it_was_issued_is_challenged_again() -> None:
    clock = Clock()
    auth = plugin(clock)
    challenge = adobe_challenge(auth)
    clock.now += TTL
    _, again = refusal(auth.connect(client(adobe_answer(challenge, "secret1"))))
    assert again["reason"] == "needauth" and again["opaque"] != challenge["opaque"]


def test_a_challenge_is_forgotten_once_it_expired() -> None:
    """What the plugin remembers of used challenges stays bounded by challenge_ttl."""
    clock = Clock()
    auth = plugin(clock)
    for _ in range(5):
        assert auth.connect(client(adobe_answer(adobe_challenge(auth), "secret1"))) is None
    assert len(auth._used) == 5
    clock.now += TTL
    assert auth.connect(client(adobe_answer(adobe_challenge(auth), "secret1"))) is None
    assert len(auth._used) == 1


def test_a_challenge_is_refused_from_another_address() -> None:
    auth = plugin()
    challenge = adobe_challenge(auth, host="127.0.0.1")
    decision = auth.connect(client(adobe_answer(challenge, "secret1"), host="127.0.0.2"))
    assert refusal(decision)[1] == {"reason": "authfailed"}


def test_a_challenge_is_refused_for_another_user() -> None:
    auth = plugin()
    challenge = adobe_challenge(auth, "alice")
    decision = auth.connect(client(adobe_answer(challenge, "p4ss", user="bob")))
    assert refusal(decision)[1] == {"reason": "authfailed"}


def test_a_challenge_is_refused_for_another_application() -> None:
    auth = plugin()
    challenge = adobe_challenge(auth, app="live")
    decision = auth.connect(client(adobe_answer(challenge, "secret1"), app="other"))
    assert refusal(decision)[1] == {"reason": "authfailed"}


def test_an_opaque_the_server_did_not_issue_is_refused() -> None:
    auth = plugin()
    challenge = adobe_challenge(auth)
    forged = dict(challenge, opaque=challenge["opaque"][:20] + "0" * 16)
    assert refusal(auth.connect(client(adobe_answer(forged, "secret1"))))[1] == {
        "reason": "authfailed"
    }


# ------------------------------------------------------------------------------- workers


def test_a_challenge_issued_by_one_worker_is_accepted_by_another() -> None:
    """Workers share no memory: each builds its own plugin from the same configuration."""
    first, second = plugin(), plugin()
    assert second.connect(client(adobe_answer(adobe_challenge(first), "secret1"))) is None


def test_with_a_configured_secret_workers_agree_too() -> None:
    first, second = plugin(secret="s3cret"), plugin(secret="s3cret")
    assert second.connect(client(adobe_answer(adobe_challenge(first), "secret1"))) is None


def test_a_challenge_signed_with_another_secret_is_refused() -> None:
    first, second = plugin(secret="s3cret"), plugin(secret="other")
    decision = second.connect(client(adobe_answer(adobe_challenge(first), "secret1")))
    assert refusal(decision)[1] == {"reason": "authfailed"}


def test_a_secret_file_signs_like_the_same_secret(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_text("s3cret\n")
    path.chmod(0o600)
    first, second = plugin(secret_file=str(path)), plugin(secret="s3cret")
    assert second.connect(client(adobe_answer(adobe_challenge(first), "secret1"))) is None


# ------------------------------------------------------------------- logins and the hooks


def test_a_client_is_forgotten_when_it_disconnects() -> None:
    auth = plugin()
    answer = client(adobe_answer(adobe_challenge(auth), "secret1"))
    assert auth.connect(answer) is None
    auth.disconnect(answer)
    assert auth.user_of(answer) is None
    assert isinstance(auth.publish(answer, "cam", {}, "live"), Reject)


def test_a_login_without_a_user_name_is_refused() -> None:
    assert refusal(plugin().connect(client("?authmod=adobe")))[1] == {"reason": "authfailed"}


def test_the_plugin_is_found_by_name_and_implements_the_hooks() -> None:
    auth = build(PluginSpec("adobeauth", {"users": USERS}, "fms.toml: apps.live.plugins[0]"))
    assert isinstance(auth, AdobeAuth)
    assert verifyObject(IApplication, auth)


# ---------------------------------------------------------------------------- the options


def users_file(tmp_path: Path, text: str, mode: int = 0o600) -> str:
    path = tmp_path / "users"
    path.write_text(text)
    path.chmod(mode)
    return str(path)


def test_a_users_file_lists_user_password_lines(tmp_path: Path) -> None:
    name = users_file(tmp_path, "# operators\n\nalice:secret1\n carol : pa:ss \n")
    auth = plugin(users=None, users_file=name)
    assert auth.connect(client(adobe_answer(adobe_challenge(auth), "secret1"))) is None
    carol = adobe_challenge(auth, "carol")
    assert auth.connect(client(adobe_answer(carol, "pa:ss"))) is None


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620])
def test_a_users_file_others_may_read_or_write_is_refused(tmp_path: Path, mode: int) -> None:
    with pytest.raises(ValueError, match="chmod 600"):
        plugin(users=None, users_file=users_file(tmp_path, "alice:x\n", mode))


@pytest.mark.parametrize(
    ("text", "problem"),
    [("alice\n", "expected user:password"), ("alice:\n", "expected user:password"),
     ("a b:x\n", "user name"), ("alice:x\nalice:y\n", "listed twice")],
)  # fmt: skip
def test_a_malformed_users_file_is_explained(tmp_path: Path, text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        plugin(users=None, users_file=users_file(tmp_path, text))


@pytest.mark.parametrize(
    ("options", "problem"),
    [({"users": {}}, "configure users"), ({"users": {"a&b": "x"}}, "user name"),
     ({"users": {"alice": ""}}, "non-empty"), ({"scope": "play"}, "scope"),
     ({"authmods": []}, "authmods"), ({"authmods": ["digest"]}, "authmods"),
     ({"authmods": "adobe"}, "authmods"), ({"challenge_ttl": 0}, "challenge_ttl"),
     ({"secret": ""}, "secret"), ({"secret": "a", "secret_file": "b"}, "not both")],
)  # fmt: skip
def test_bad_options_are_explained(options: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        plugin(**options)


def test_the_configuration_check_reports_a_bad_option() -> None:
    with pytest.raises(ConfigError, match="scope"):
        build(PluginSpec("adobeauth", {"users": USERS, "scope": "x"}, "fms.toml"))


def test_a_user_in_both_users_and_users_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="also in users"):
        plugin(users_file=users_file(tmp_path, "alice:other\n"))


def test_a_secret_file_others_may_read_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_text("s3cret")
    os.chmod(path, 0o644)
    with pytest.raises(ValueError, match="chmod 600"):
        plugin(secret_file=str(path))


def test_an_answer_replayed_to_another_worker_is_challenged_again(tmp_path: Path) -> None:
    """Two instances with one key and one ``used_dir``, as two workers of one server: the
    answer the first accepted is used up for the second too."""
    folder = tmp_path / "spent"
    first, second = plugin(used_dir=folder), plugin(used_dir=folder)
    answer = adobe_answer(adobe_challenge(first), "secret1")
    assert first.connect(client(answer)) is None
    authmod, again = refusal(second.connect(client(answer)))
    assert (authmod, again["reason"]) == ("adobe", "needauth")


def test_the_workers_of_one_server_share_the_default_used_folder() -> None:
    assert plugin()._used_dir == plugin()._used_dir


def test_a_used_folder_others_may_read_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "open"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    with pytest.raises(ValueError, match="used_dir"):
        plugin(used_dir=folder)
