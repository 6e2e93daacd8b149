"""A storage URL's password never appears in logs, files, study attrs or error messages."""

from __future__ import annotations

import json
import logging

import optuna
import pytest
from sqlalchemy.engine import make_url

import toy_sfd
from limen.experiment import UniversalExperimentLoop

PASSWORD = "s3cr3t-Pa55word"


def with_password(url: str) -> str:
    return make_url(url).set(password=PASSWORD).render_as_string(hide_password=False)


@pytest.mark.postgres
def test_a_password_in_the_storage_url_is_never_written_or_shown(
    tmp_path, postgres_url, unique_study_name, caplog, capsys
):
    caplog.set_level(logging.DEBUG)
    url = with_password(postgres_url)
    directory = tmp_path / "exp"

    def loop() -> UniversalExperimentLoop:
        return UniversalExperimentLoop(
            sfd=toy_sfd,
            data=toy_sfd.toy_data(),
            experiment_dir=directory,
            storage=url,
            objective="score",
        )

    loop().run(unique_study_name, n_permutations=4, progress_bar=False)
    with pytest.raises(FileExistsError) as used:
        loop().run(unique_study_name, n_permutations=4, progress_bar=False)
    loop().run(unique_study_name, n_permutations=6, resume=True, progress_bar=False)

    assert PASSWORD not in str(used.value)
    assert PASSWORD not in caplog.text
    assert PASSWORD not in "".join(capsys.readouterr())
    for path in directory.rglob("*"):
        if path.is_file():
            assert PASSWORD.encode() not in path.read_bytes(), path
    study = optuna.load_study(study_name=unique_study_name, storage=postgres_url)
    assert PASSWORD not in json.dumps(study.user_attrs, default=str)
    assert "***" in json.loads((directory / "metadata.json").read_text())["storage"]


def test_an_unreachable_storage_error_hides_the_password(tmp_path):
    url = f"postgresql+psycopg://someone:{PASSWORD}@127.0.0.1:9/nowhere"
    loop = UniversalExperimentLoop(
        sfd=toy_sfd, data=toy_sfd.toy_data(), experiment_dir=tmp_path / "exp", storage=url
    )
    with pytest.raises(Exception) as failure:
        loop.run("toy", n_permutations=2, progress_bar=False)
    text = str(failure.value) + repr(failure.value)
    cause = failure.value.__cause__ or failure.value.__context__
    while cause is not None:
        text += str(cause)
        cause = cause.__cause__ or cause.__context__
    assert PASSWORD not in text
    assert not (tmp_path / "exp").exists()
