"""pc_core.urls: the one parser of file URLs (normalising, servers, LFNs, prefixes)."""
from __future__ import annotations

import os

import pytest

from pc_core.urls import join_prefix, lfn_of, normalise_url, server_of


@pytest.mark.parametrize(
    ("a", "b"),
    [("root://Host:1094//store/x.root", "root://host//store/x.root"),
     ("root://host/store/x.root", "root://host//store/x.root"),
     ("root://host//store//mc///x.root", "root://host//store/mc/x.root"),
     ("https://host:443/a//b.root", "https://host/a/b.root")],
)
def test_one_spelling_per_remote_file(a, b):
    assert normalise_url(a) == normalise_url(b) == b


def test_local_aliases_are_one_file(tmp_path, monkeypatch):
    target = tmp_path / "a.root"
    target.write_bytes(b"")
    (tmp_path / "link.root").symlink_to(target)
    monkeypatch.chdir(tmp_path)
    spellings = ["a.root", "./a.root", f"file://{target}", str(tmp_path / "link.root"), f"{tmp_path}//a.root"]
    assert {normalise_url(s) for s in spellings} == {os.path.realpath(target)}


@pytest.mark.parametrize(
    ("url", "server"),
    [("root://EOS.cern.ch:1094//store/x", "root://eos.cern.ch:1094"), ("/data/x.root", "file://"),
     ("file:///data/x.root", "file://"), ("https://h/x", "https://h")],
)
def test_server_of(url, server):
    assert server_of(url) == server


@pytest.mark.parametrize(
    ("url", "lfn"),
    [("root://h:1094//store/mc/x.root", "/store/mc/x.root"), ("/eos/cms/store/data/y.root", "/store/data/y.root"),
     ("root://h//eos//store/z.root", "/store/z.root"), ("/tmp/nothing.root", None)],
)
def test_lfn_of(url, lfn):
    assert lfn_of(url) == lfn


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [("root://xrootd-cms.infn.it//", "root://xrootd-cms.infn.it//store/x.root"),
     ("root://h:1095", "root://h:1095//store/x.root"),
     ("root://h//eos/cms/", "root://h//eos/cms/store/x.root"),
     ("/eos/cms", "/eos/cms/store/x.root")],
)
def test_join_prefix(prefix, expected):
    assert join_prefix(prefix, "/store/x.root") == expected
