"""The nginx source in nginx/ renders into configs that nginx itself accepts."""

import shutil
import subprocess

import pytest

from deploy import nginx

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def test_native_render_passes_nginx_t(tmp_path):
    (tmp_path / "nginx-tmp").mkdir()
    nginx.render(
        tmp_path, main=True, run_dir=str(tmp_path), log_dir=str(tmp_path),
        asgi_servers=["127.0.0.1:8100", "127.0.0.1:8101"], static_root=str(tmp_path),
    )
    result = subprocess.run([NGINX, "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"), "-e", "stderr"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    site = (tmp_path / "conf.d" / "switchyard-site.conf").read_text()
    upstreams = (tmp_path / "conf.d" / "switchyard-upstreams.conf").read_text()
    assert "proxy_read_timeout 60s;" in site  # 3 x the default 20 s ping interval
    assert "least_conn;" in upstreams
    assert "server 127.0.0.1:8101 max_fails=0 fail_timeout=2s;" in upstreams  # no passive health: see the template


def test_resolver_turns_on_dynamic_upstreams(tmp_path):
    nginx.render(tmp_path, resolver="127.0.0.11", asgi_servers=["asgi:8100"], web_servers=["web:8000"])
    upstreams = (tmp_path / "conf.d" / "switchyard-upstreams.conf").read_text()
    assert "server asgi:8100 resolve max_fails=0 fail_timeout=2s;" in upstreams and "zone switchyard_asgi" in upstreams
    assert "resolver 127.0.0.11" in (tmp_path / "conf.d" / "switchyard-site.conf").read_text()


def test_read_timeout_must_outlast_the_ping_interval():
    with pytest.raises(ValueError):
        nginx.context(asgi_ping_interval=30, ws_read_timeout=30)
    with pytest.raises(KeyError):
        nginx.context(listen_port=80)


def test_tls_site_redirects_plain_http_and_passes_nginx_t(tmp_path):
    import subprocess as sp

    sp.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
            "-keyout", str(tmp_path / "key.pem"), "-out", str(tmp_path / "cert.pem")], check=True, capture_output=True)
    (tmp_path / "nginx-tmp").mkdir()
    nginx.render(
        tmp_path, main=True, run_dir=str(tmp_path), log_dir=str(tmp_path), static_root=str(tmp_path),
        listen="127.0.0.1:8080", tls_listen="127.0.0.1:8443", https_port=8443,
        tls_certificate=str(tmp_path / "cert.pem"), tls_certificate_key=str(tmp_path / "key.pem"),
    )
    site = (tmp_path / "conf.d" / "switchyard-site.conf").read_text()
    assert "listen 127.0.0.1:8443 ssl;" in site
    assert "return 301 https://$host:8443$request_uri;" in site
    result = subprocess.run([NGINX, "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"), "-e", "stderr"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_each_websocket_prefix_gets_its_own_upgraded_location(tmp_path):
    nginx.render(tmp_path, websocket_prefixes="/ws/, /live/")
    site = (tmp_path / "conf.d" / "switchyard-site.conf").read_text()
    for prefix in ("/ws/", "/live/"):
        block = site.split(f"location {prefix} {{", 1)[1].split("}", 1)[0]
        assert "proxy_pass http://switchyard_asgi;" in block and "proxy_set_header Upgrade $http_upgrade;" in block
    assert site.count("proxy_pass http://switchyard_asgi;") == 2


@pytest.mark.parametrize("prefix", ["ws/", "/ws", "/", "/static/", "/w s/", "/ws/;", ""])
def test_a_prefix_nginx_cannot_route_is_refused(prefix):
    with pytest.raises(ValueError):
        nginx.context(websocket_prefixes=[prefix])


def test_the_defaults_come_from_the_runtimes_defaults_env():
    from switchyard.defaults import load

    facts = load()
    assert nginx.DEFAULTS["web_servers"] == [f"127.0.0.1:{facts['WEB_PORT']}"]
    assert nginx.DEFAULTS["asgi_servers"][0] == f"127.0.0.1:{facts['ASGI_PORT']}"
    assert len(nginx.DEFAULTS["asgi_servers"]) == int(facts["ASGI_WORKERS"])
    assert nginx.DEFAULTS["asgi_ping_interval"] == int(facts["ASGI_PING_INTERVAL"])
    assert nginx.DEFAULTS["websocket_prefixes"] == facts["WEBSOCKET_PATH_PREFIXES"].split(",")
