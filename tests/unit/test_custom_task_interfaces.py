"""CustomTask interfaces and user secrets (drum.model.custom_task, drum.model.user_secrets): DRUM's save/load
rules, secret types and precedence, and the masking of secret values in streams and logs."""

from __future__ import annotations

import io
import json
import logging
import sys
import threading

import pytest

from drum.errors import DrumSerializationError
from drum.model.compat import install_datarobot_drum_alias
from drum.model.custom_task import (
    ARTIFACT_FILE,
    RegressionEstimatorInterface,
    TransformerInterface,
    is_custom_task_class,
    secrets_injection_context,
)
from drum.model.user_secrets import (
    ApiTokenSecret,
    BasicSecret,
    GCPKey,
    GCPSecret,
    UnsupportedSecretError,
    load_secrets,
    scrub_outputs,
    secrets_factory,
    sensitive_values,
    unscrub_outputs,
)


class Task(RegressionEstimatorInterface):
    def fit(self, X, y, **kwargs):  # noqa: N803
        self.fitted = True
        self.lock = threading.Lock()
        return self


def test_save_and_load_round_trip_with_excluded_attributes(tmp_path):
    task = Task().fit(None, None)
    task.save_task(str(tmp_path), exclude=["lock"])
    assert (tmp_path / ARTIFACT_FILE).exists()
    assert isinstance(task.lock, type(threading.Lock()))  # restored on the object
    loaded = Task.load(str(tmp_path))
    assert loaded.fitted and loaded.lock is None


def test_save_errors(tmp_path):
    with pytest.raises(DrumSerializationError, match="The object named nope passed in exclude= was not found"):
        Task().save_task(str(tmp_path), exclude=["nope"])
    with pytest.raises(TypeError):  # the lock cannot be pickled: `drum fit` turns this into DRUM's message
        Task().fit(None, None).save(str(tmp_path))


class Other(TransformerInterface):
    pass


def test_load_requires_the_class(tmp_path):
    Other().save(str(tmp_path))
    with pytest.raises(DrumSerializationError, match="load_task method must return a Task class"):
        Task.load(str(tmp_path))


def test_is_custom_task_class():
    assert is_custom_task_class(Task)
    assert not is_custom_task_class(object) and not is_custom_task_class(Task())

    class Plain:
        pass

    assert not is_custom_task_class(Plain)


def test_the_datarobot_drum_alias_exports_the_interfaces():
    if install_datarobot_drum_alias() is False and "datarobot_drum.custom_task_interfaces" not in sys.modules:
        pytest.skip("the real datarobot_drum is installed")
    from datarobot_drum.custom_task_interfaces import (  # type: ignore[import-not-found]
        BasicSecret as AliasedSecret,
    )
    from datarobot_drum.custom_task_interfaces import (
        RegressionEstimatorInterface as Aliased,
    )

    assert Aliased is RegressionEstimatorInterface and AliasedSecret is BasicSecret


def test_secret_types_and_their_repr():
    secret = secrets_factory({"credential_type": "basic", "username": "u", "password": "p", "extra": 1})
    assert secret == BasicSecret(username="u", password="p")
    assert repr(secret) == "BasicSecret(username='*****', password='*****', snowflake_account_name=None)"
    assert secrets_factory({"credential_type": "API_TOKEN", "api_token": "t"}) == ApiTokenSecret("t")
    gcp = secrets_factory({"credential_type": "gcp", "gcp_key": {"type": "sa", "private_key": "k"}, "config_id": "c"})
    assert isinstance(gcp, GCPSecret) and gcp.gcp_key == GCPKey(type="sa", private_key="k") and gcp.is_partial_secret()
    with pytest.raises(UnsupportedSecretError, match="Unsupported secret type: 'carrier_pigeon'"):
        secrets_factory({"credential_type": "carrier_pigeon"})


def test_mounted_files_win_over_environment_variables(tmp_path):
    (tmp_path / "DB").write_text(json.dumps({"credential_type": "basic", "username": "m", "password": "mounted"}))
    (tmp_path / "sub").mkdir()  # directories are not secrets
    environ = {
        "PFX_DB": json.dumps({"credential_type": "basic", "username": "e", "password": "env"}),
        "PFX_TOKEN": json.dumps({"credential_type": "api_token", "api_token": "tok"}),
        "OTHER_X": "not json, not ours",
    }
    secrets = load_secrets(str(tmp_path), "PFX", environ)
    assert secrets == {"DB": BasicSecret("m", "mounted"), "TOKEN": ApiTokenSecret("tok")}
    assert load_secrets(None, None, environ) == {}


def test_sensitive_values_longest_first_and_nested():
    secrets = [BasicSecret("ab", "abcd"), GCPSecret(gcp_key={"type": "x", "private_key": "kkk"})]  # type: ignore[arg-type]
    assert sensitive_values(secrets) == ["abcd", "kkk", "ab", "x"]


def test_scrubbing_streams_and_loggers():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    log = logging.getLogger("drum.tests.secrets")
    log.addHandler(handler)
    log.propagate = False
    saved = sys.stdout
    sys.stdout = out = io.StringIO()
    try:
        scrub_outputs([BasicSecret("user", "hunter2")])
        print("password hunter2 for user")
        log.warning("logged %s and %s", "hunter2", 3)
        unscrub_outputs()
        print("after hunter2")
        log.warning("after %s", "hunter2")
    finally:
        sys.stdout = saved
        log.removeHandler(handler)
    assert out.getvalue() == "password ***** for *****\nafter hunter2\n"
    assert stream.getvalue() == "logged ***** and 3\nafter hunter2\n"


def test_injection_context_sets_and_clears_secrets(tmp_path):
    (tmp_path / "K").write_text(json.dumps({"credential_type": "api_token", "api_token": "v"}))
    task = Task()
    assert task.secrets == {}
    with secrets_injection_context(task, str(tmp_path), None):
        assert task.secrets == {"K": ApiTokenSecret("v")}
    assert task.secrets == {} and task._secrets is None
