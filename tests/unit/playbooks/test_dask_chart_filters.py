"""Filters of the dask_chart role: password hashes, input checks, exposure, commands."""

import importlib.util
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError
from argon2 import PasswordHasher

PLUGIN = Path(__file__).resolve().parents[3] / "roles/dask_chart/filter_plugins/dask_chart.py"
spec = importlib.util.spec_from_file_location("dask_chart_filters", PLUGIN)
filters = importlib.util.module_from_spec(spec)
spec.loader.exec_module(filters)


def test_hash_has_jupyter_server_argon2_format_and_verifies():
    hashed = filters.jupyter_password_hash("s3cret-password")
    assert hashed.startswith("argon2:$argon2id$")
    assert PasswordHasher().verify(hashed.removeprefix("argon2:"), "s3cret-password")


def test_hash_uses_jupyter_cost_parameters():
    hashed = filters.jupyter_password_hash("s3cret-password")
    assert "$m=10240,t=10,p=8$" in hashed


def test_matching_deployed_hash_is_kept_for_idempotency():
    deployed = filters.jupyter_password_hash("s3cret-password")
    assert filters.jupyter_password_hash("s3cret-password", deployed) == deployed


def test_deployed_hash_of_another_password_is_replaced():
    deployed = filters.jupyter_password_hash("old-password")
    new = filters.jupyter_password_hash("new-password", deployed)
    assert new != deployed
    assert PasswordHasher().verify(new.removeprefix("argon2:"), "new-password")


@pytest.mark.parametrize(
    "deployed",
    ["", None, "sha1:aae8550c0a44:9507d45e087d5ee481a5ce9f4f16f37a0867318c", "argon2:junk"],
)
def test_unusable_deployed_hash_gives_a_fresh_one(deployed):
    new = filters.jupyter_password_hash("s3cret-password", deployed)
    assert new != deployed
    assert PasswordHasher().verify(new.removeprefix("argon2:"), "s3cret-password")


def test_two_fresh_hashes_differ_by_salt():
    assert filters.jupyter_password_hash("same") != filters.jupyter_password_hash("same")


@pytest.mark.parametrize("password", ["", None, 12345678])
def test_empty_or_non_string_password_is_refused(password):
    with pytest.raises(AnsibleFilterError, match="non-empty string"):
        filters.jupyter_password_hash(password)


@pytest.mark.parametrize(
    ("ranges", "problem"),
    [
        (["10.0.0.1/8"], '"10.0.0.1/8" is not a CIDR with the host bits clear'),
        (["10.0.0.0"], '"10.0.0.0" is not a CIDR'),
        (["300.0.0.0/8"], '"300.0.0.0/8" is not a CIDR'),
        (["not-a-cidr"], '"not-a-cidr" is not a CIDR'),
        ([42], "42 is not a CIDR"),
        (["2001:db8::/32"], '"2001:db8::/32" is an IPv6 range'),
        (["::/0"], '"::/0" is an IPv6 range'),
        (["10.0.0.0/8", "10.0.0.0/8"], '["10.0.0.0/8"] appear more than once'),
        (
            [f"10.{i // 256}.{i % 256}.0/24" for i in range(5001)],
            "5001 ranges are more than the 5000",
        ),
    ],
)
def test_source_range_problems_name_the_bad_entry(ranges, problem):
    problems = filters.source_range_problems(ranges, 5000)
    assert len(problems) == 1
    assert problem in problems[0]


def test_good_source_ranges_have_no_problem():
    assert filters.source_range_problems(["127.0.0.0/8", "203.0.113.7/32", "0.0.0.0/0"], 5000) == []
    assert filters.source_range_problems([f"10.0.{i}.0/24" for i in range(256)], 5000) == []


def test_a_string_of_source_ranges_is_a_problem_not_an_error():
    assert filters.source_range_problems("10.0.0.0/8", 5000) == [
        'a YAML list is needed, not "10.0.0.0/8"'
    ]


def service(name, service_type, ingress=None, ports=()):
    status = {"loadBalancer": {"ingress": ingress}} if ingress is not None else {}
    return {
        "metadata": {"name": name},
        "spec": {"type": service_type, "ports": [dict(port) for port in ports]},
        "status": status,
    }


def test_service_addresses_take_the_first_ingress_and_the_ports():
    scheduler = service(
        "dask-scheduler",
        "LoadBalancer",
        ingress=[{"ip": "127.0.0.10"}, {"ip": "127.0.0.11"}],
        ports=[
            {"name": "dask-scheduler", "port": 8786, "targetPort": 8786},
            {"name": "dask-webui", "port": 80, "targetPort": 8787},
        ],
    )
    assert filters.service_addresses([scheduler]) == {
        "dask-scheduler": {
            "type": "LoadBalancer",
            "ip": "127.0.0.10",
            "hostname": None,
            "ports": [{"name": "dask-scheduler", "port": 8786}, {"name": "dask-webui", "port": 80}],
        }
    }


def test_service_addresses_of_clusterip_and_hostname_services():
    addresses = filters.service_addresses(
        [
            service("dask-jupyter", "ClusterIP", ports=[{"name": "dask-jupyter", "port": 80}]),
            service("elb", "LoadBalancer", ingress=[{"hostname": "lb.example"}]),
            service("pending", "LoadBalancer", ingress=[]),
        ]
    )
    assert addresses["dask-jupyter"]["ip"] is None
    assert addresses["dask-jupyter"]["type"] == "ClusterIP"
    assert addresses["elb"]["hostname"] == "lb.example"
    assert addresses["pending"] == {
        "type": "LoadBalancer",
        "ip": None,
        "hostname": None,
        "ports": [],
    }


def test_service_addresses_refuse_a_non_list():
    with pytest.raises(AnsibleFilterError, match="list of Services"):
        filters.service_addresses({"dask-scheduler": {}})


# ---- load balancer options and the exposure the post-renderer applies ---------------


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        (
            {"lb_type": "internal", "lb_class": "networking.gke.io/l4-regional-external"},
            "both choose the load balancer",
        ),
        ({"lb_class": "l4-regional-external"}, "is not a domain-prefixed name"),
        (
            {"ips": {"worker": "203.0.113.10"}},
            "dask_chart_load_balancer_ips.worker: no such Service",
        ),
        ({"ips": {"scheduler": "203.0.113.300"}}, '.scheduler="203.0.113.300" is not an IPv4'),
        ({"ips": {"jupyter": "2001:db8::1"}}, "is not an IPv4"),
        ({"annotations": {"team": True}}, "annotations.team=true is not a string: annotations are"),
        ({"annotations": {"example.com/port": 8080}}, "example.com/port=8080 is not a string"),
        ({"annotations": {"bad key!": "x"}}, 'key "bad key!" is not an annotation key'),
        (
            {"annotations": {"cloud.google.com/l4-rbs": "enabled"}},
            "use dask_chart_load_balancer_type=external-rbs instead",
        ),
    ],
)
def test_load_balancer_problems_name_the_variable_and_the_fix(options, problem):
    arguments = {"lb_type": "external", "lb_class": "", "ips": {}, "annotations": {}, **options}
    problems = filters.load_balancer_problems(**arguments)
    assert len(problems) == 1, problems
    assert problem in problems[0]


def test_good_load_balancer_options_have_no_problem():
    assert (
        filters.load_balancer_problems(
            "external",
            "networking.gke.io/l4-regional-external",
            {"scheduler": "203.0.113.10", "jupyter": "203.0.113.11"},
            {"networking.gke.io/internal-load-balancer-allow-global-access": "true"},
        )
        == []
    )


def exposure(**overrides):
    base = {
        "fullname": "dask",
        "components": ["scheduler", "jupyter"],
        "exposed": True,
        "ranges": ["10.0.0.0/8"],
        "type": "external",
        "class": "",
        "ips": {},
        "annotations": {},
    }
    return {**base, **overrides}


def test_unexposed_services_are_cluster_ip_and_nothing_else():
    services = filters.service_exposure(exposure(exposed=False, ips={"scheduler": "1.2.3.4"}))
    assert services == {
        "dask-scheduler": {"type": "ClusterIP"},
        "dask-jupyter": {"type": "ClusterIP"},
    }


@pytest.mark.parametrize(
    ("lb_type", "annotations"),
    [
        ("external", {}),
        ("external-rbs", {"cloud.google.com/l4-rbs": "enabled"}),
        ("internal", {"networking.gke.io/load-balancer-type": "Internal"}),
    ],
)
def test_load_balancer_type_becomes_gkes_annotation(lb_type, annotations):
    services = filters.service_exposure(exposure(type=lb_type, annotations={"team": "data"}))
    for name in ("dask-scheduler", "dask-jupyter"):
        assert services[name] == {
            "type": "LoadBalancer",
            "loadBalancerSourceRanges": ["10.0.0.0/8"],
            "annotations": {**annotations, "team": "data"},
        }


def test_class_replaces_the_annotation_and_ips_go_to_their_service():
    services = filters.service_exposure(
        exposure(
            type="internal",
            components=["scheduler"],
            ips={"scheduler": "203.0.113.10"},
            **{"class": "networking.gke.io/l4-regional-internal"},
        )
    )
    assert services == {
        "dask-scheduler": {
            "type": "LoadBalancer",
            "loadBalancerSourceRanges": ["10.0.0.0/8"],
            "annotations": {},
            "loadBalancerClass": "networking.gke.io/l4-regional-internal",
            "loadBalancerIP": "203.0.113.10",
        }
    }


# ---- the Dask commands ------------------------------------------------------------------


class FakeDistribution:
    """importlib.metadata's view of an installed distributed wheel."""

    def __init__(self, version, console_scripts):
        from importlib.metadata import EntryPoint  # noqa: PLC0415

        self.version = version
        self.entry_points = [
            EntryPoint(name, f"distributed.cli.{name}:main", "console_scripts")
            for name in console_scripts
        ] + [EntryPoint("scheduler", "distributed.cli.dask_scheduler:main", "dask_cli")]


REWRITE = {"dask-scheduler": ["dask", "scheduler"], "dask-worker": ["dask", "worker"]}


@pytest.mark.parametrize(
    ("installed", "version", "rewrite"),
    [
        # The installed version still has the console scripts: the chart's commands stay.
        (
            FakeDistribution("2026.3.0", ["dask-scheduler", "dask-worker", "dask-ssh"]),
            "2026.3.0",
            {},
        ),
        # The installed version has lost them (2026.6.0 and later): rewrite.
        (FakeDistribution("2026.7.1", []), "2026.7.1", REWRITE),
        # Another version than the installed one: no evidence, `dask scheduler` works everywhere.
        (FakeDistribution("2026.3.0", ["dask-scheduler", "dask-worker"]), "2024.1.0", REWRITE),
        (None, "2024.1.0", REWRITE),
    ],
)
def test_commands_are_rewritten_unless_the_installed_wheel_shows_the_console_scripts(
    installed, version, rewrite
):
    assert filters.command_rewrite(version, installed or False) == rewrite


def test_the_pinned_distributed_decides_for_the_default_version():
    # requirements.txt pins distributed to dask_chart_dask_version's default (2026.7.1),
    # which no longer ships dask-scheduler / dask-worker.
    from importlib.metadata import version  # noqa: PLC0415

    assert filters.command_rewrite(version("distributed")) == REWRITE


# ---- dask_chart_values ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        (
            {"scheduler": {"serviceType": "LoadBalancer"}},
            'serviceType="LoadBalancer" is set by the role: use dask_chart_allowed_source_ranges',
        ),
        ({"jupyter": {"serviceType": "NodePort"}}, "jupyter.serviceType"),
        ({"scheduler": {"loadBalancerIP": "1.2.3.4"}}, "use dask_chart_load_balancer_ips instead"),
        (
            {"scheduler": {"serviceAnnotations": {"a": "b"}}},
            "use dask_chart_load_balancer_annotations",
        ),
        (
            {"worker": {"replicas": -1}},
            "worker.replicas=-1 is set by the role: use dask_chart_worker_replicas",
        ),
        ({"jupyter": {"password": "dask"}}, "use dask_chart_jupyter_password instead"),
        ({"jupyter": {"enabled": False}}, "use dask_chart_jupyter_enabled instead"),
        (
            {"worker": {"image": {"tag": "2024.1.0"}}},
            'worker.image.tag="2024.1.0" is set by the role: use dask_chart_dask_version',
        ),
        ({"scheduler": {"image": {"repository": "x/y"}}}, "use dask_chart_scheduler_image"),
        (
            {"worker": {"env": [{"name": "EXTRA_PIP_PACKAGES", "value": "s3fs"}]}},
            'worker.env[0] sets EXTRA_PIP_PACKAGES="s3fs", which the role sets',
        ),
        (
            {"jupyter": {"env": {"EXTRA_PIP_PACKAGES": "s3fs"}}},
            'jupyter.env={"EXTRA_PIP_PACKAGES": "s3fs"} must be a list',
        ),
        ({"scheduler": {"env": ["A=1"]}}, 'scheduler.env[0]="A=1" must be a mapping with a name'),
        (
            {"jupyter": {"extraConfig": "c.PasswordIdentityProvider.hashed_password = ''"}},
            "jupyter.extraConfig touches the Jupyter login ('Password')",
        ),
        (
            {"jupyter": {"extraConfig": "c.IdentityProvider.token = ''"}},
            "touches the Jupyter login",
        ),
        (
            {"jupyter": {"extraConfig": "c.ServerApp.disable_check_xsrf = True"}},
            "touches the Jupyter login",
        ),
        ({"workers": {"replicas": 5}}, "dask_chart_values.workers is not a value of the chart"),
        ({"daskGke": {}}, "dask_chart_values.daskGke is where the role records"),
        (
            {"worker": {"resource": {"limits": {"cpu": 1}}}},
            "dask_chart_values.worker.resource is not a value",
        ),
        ({"worker": {"resources": "big"}}, 'worker.resources="big" must be a mapping'),
        (
            {"worker": {"extraArgs": "--nthreads 2"}},
            'worker.extraArgs="--nthreads 2" must be a list',
        ),
        ({"scheduler": {"servicePort": 70000}}, "scheduler.servicePort=70000 is out of range"),
        ({"scheduler": "big"}, 'dask_chart_values.scheduler="big" must be a mapping'),
        (
            {"additional_worker_groups": [{"name": "highmem", "replicas": -2}]},
            "additional_worker_groups[0].replicas=-2 is out of range (at least 0)",
        ),
        ({"additional_worker_groups": [{"replicas": 2}]}, "must be a mapping with a name"),
        (
            {"additional_worker_groups": [{"name": "gpu", "image": {"tag": "2026.8.0"}}]},
            'image.tag="2026.8.0" is set by the role for every worker group',
        ),
        (
            {
                "additional_worker_groups": [
                    {"name": "a", "env": [{"name": "EXTRA_PIP_PACKAGES", "value": "x"}]}
                ]
            },
            "use dask_chart_extra_pip_packages instead",
        ),
        ({"fullnameOverride": "My_Dask"}, "must be lowercase letters"),
        (
            {"worker": {"readinessProbe": {"exec": {"command": ["true"]}}}},
            "is set by the role: its probe makes a rolled-out Pod one that answers",
        ),
    ],
)
def test_values_problems_name_the_key_the_value_and_the_fix(values, problem):
    problems = filters.values_problems(values)
    assert len(problems) == 1, problems
    assert problems[0].startswith("dask_chart_values.")
    assert problem in problems[0]


def test_values_the_role_leaves_to_the_user_pass():
    values = {
        "worker": {
            "resources": {"limits": {"cpu": 1, "memory": "3G"}},
            "env": [{"name": "DASK_DISTRIBUTED__WORKER__DAEMON", "value": "False"}],
            "nodeSelector": {"pool": "dask"},
            "image": {"pullPolicy": "Always"},
        },
        "scheduler": {"servicePort": 8786, "extraArgs": ["--idle-timeout", "3600"]},
        "jupyter": {"extraConfig": "c.ServerApp.root_dir = '/home/jovyan'"},
        "webUI": {"servicePort": 8080},
        "additional_worker_groups": [{"name": "highmem", "replicas": 2}],
        "fullnameOverride": "analytics",
    }
    assert filters.values_problems(values) == []
