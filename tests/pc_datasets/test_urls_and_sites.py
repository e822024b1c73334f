import random

import pytest

from pc_datasets.errors import SiteSelectionError
from pc_datasets.sites import SiteSelection, parse_site_list
from pc_datasets.urls import GLOBAL_REDIRECTOR, join_prefix, lfn_of, local_url, redirector_url


@pytest.mark.parametrize(
    "url, lfn",
    [
        ("root://127.0.0.1:1094//store/mc/A/f.root", "/store/mc/A/f.root"),
        ("root://eoscms.cern.ch//eos/cms/store/data/B/g.root", "/store/data/B/g.root"),
        ("davs://host:2880/pnfs/x/cms/store/mc/C/h.root", "/store/mc/C/h.root"),
        ("/eos/cms/store/user/u/i.root", "/store/user/u/i.root"),
        ("/data/local/file.root", None),
        ("root://host//eos/user/x.root", None),
    ],
)
def test_lfn_of(url, lfn):
    assert lfn_of(url) == lfn


def test_redirector_and_local_rewrites_keep_non_store_urls():
    url = "root://127.0.0.1:1095//store/mc/A/f.root"
    assert redirector_url(url) == "root://xrootd-cms.infn.it//store/mc/A/f.root"
    assert redirector_url(url, "root://cms-xrd-global.cern.ch/") == "root://cms-xrd-global.cern.ch//store/mc/A/f.root"
    assert local_url(url, "/eos/cms/") == "/eos/cms/store/mc/A/f.root"
    assert redirector_url("/data/x.root") == "/data/x.root"
    assert join_prefix(GLOBAL_REDIRECTOR, "/store/a.root") == "root://xrootd-cms.infn.it//store/a.root"
    assert join_prefix("root://h:1//eos/cms", "/store/a.root") == "root://h:1//eos/cms/store/a.root"


def test_parse_site_list_accepts_commas_spaces_and_repeats():
    assert parse_site_list(("T2_CH_CERN,T1_DE_KIT", "T2_IT_Pisa T2_CH_CERN")) == ("T2_CH_CERN", "T1_DE_KIT", "T2_IT_Pisa")
    assert parse_site_list(None) == ()


SITES = ["T2_CH_CERN", "T1_DE_KIT", "T3_CH_PSI", "T2_IT_Pisa"]


def test_selection_block_allow_regex_priority():
    assert SiteSelection(blocklist=("T1_DE_KIT",)).order(SITES) == ["T2_CH_CERN", "T2_IT_Pisa", "T3_CH_PSI"]
    assert SiteSelection(allowlist=("T3_CH_PSI", "T1_DE_KIT")).order(SITES) == ["T1_DE_KIT", "T3_CH_PSI"]
    assert SiteSelection(regex=r"_CH_").order(SITES) == ["T2_CH_CERN", "T3_CH_PSI"]
    assert SiteSelection(prioritylist=("T3_CH_PSI", "T2_IT_Pisa")).order(SITES)[:2] == ["T3_CH_PSI", "T2_IT_Pisa"]
    assert SiteSelection(sort="tier").order(SITES) == ["T1_DE_KIT", "T2_CH_CERN", "T2_IT_Pisa", "T3_CH_PSI"]


def test_random_sort_is_seeded_and_a_permutation():
    sel = SiteSelection(sort="random", seed=7, prioritylist=("T3_CH_PSI",))
    first = sel.order(SITES)
    assert first == sel.order(SITES)
    assert first[0] == "T3_CH_PSI" and sorted(first) == sorted(SITES)
    orders = {tuple(sel.order(SITES, random.Random(s))) for s in range(30)}
    assert len(orders) > 1


def test_selection_errors_name_the_problem():
    with pytest.raises(SiteSelectionError, match="accepted: priority, random, tier"):
        SiteSelection(sort="geoip")
    with pytest.raises(SiteSelectionError, match="not a valid regular expression"):
        SiteSelection(regex="T2_(")
    with pytest.raises(SiteSelectionError, match="both in --allowlist-sites and --blocklist-sites"):
        SiteSelection(allowlist=("A",), blocklist=("A",))
    with pytest.raises(SiteSelectionError, match=r"--blocklist-sites: unknown site\(s\) T2_XX_Nowhere; sites known to Rucio: T1_DE_KIT, T2_CH_CERN"):
        SiteSelection(blocklist=("T2_XX_Nowhere",)).validate_names(["T2_CH_CERN", "T1_DE_KIT"])
