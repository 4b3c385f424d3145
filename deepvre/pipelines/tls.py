"""Per-user mutual-TLS credentials for the Dask clusters deepvre starts.

Every scheduler, worker and nanny that ``deepvre.pipelines.clusters`` starts listens on
``tls://`` and lets in only a peer that shows a certificate signed by the user's own Dask CA
(``distributed.security.Security`` with ``require_encryption=True``: both sides verify).
The credentials are made once per user, on first use, in a folder only the owner can read::

    ~/.local/share/deepvre/dask/      0700
        ca.pem                        0600  the CA certificate (the only one trusted)
        dask.pem                      0600  the certificate every role shows (client, scheduler, worker)
        dask-key.pem                  0600  its private key

The CA's private key is thrown away once it has signed ``dask.pem``: nobody, the owner
included, can mint another certificate that the cluster accepts. Slurm workers run as the
user on nodes that mount the same home, so they read the same files.

``user_security()`` returns the ``Security``; ``tls_files()`` makes or checks the files.
A folder or file that others could read, or that another account owns, is never trusted:
loose modes are tightened and the credentials made anew (the old key may have leaked).
"""

import contextlib
import datetime
import fcntl
import os
import stat

TLS_DIR = "~/.local/share/deepvre/dask"
FILES = {"ca": "ca.pem", "cert": "dask.pem", "key": "dask-key.pem"}
VALID_DAYS = 3650
RENEW_DAYS = 30  # made anew when less is left (a running cluster keeps its loaded credentials)


def tls_directory(directory=None):
    """The folder with the user's Dask credentials (``~`` is this process's ``HOME``)."""
    return os.path.abspath(os.path.expanduser(directory or TLS_DIR))


def _account():
    import pwd

    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return f"uid {os.geteuid()}"


def _owned_by_me(st):
    return st.st_uid == os.geteuid()


def _check_folder(directory):
    """Create the folder 0700; refuse one that is not ours, or inside a folder another account could
    swap it out of; tighten a loose mode. True if it was loose."""
    from deepvre.private_dirs import untrusted_parent

    os.makedirs(directory, mode=0o700, exist_ok=True)
    unsafe = untrusted_parent(directory)
    if unsafe:
        raise PermissionError(f"Dask TLS folder {directory}: the folder {unsafe} above it is another account's "
                              "or writable by others")
    st = os.lstat(directory)
    if not stat.S_ISDIR(st.st_mode) or not _owned_by_me(st):
        raise PermissionError(f"Dask TLS folder {directory} must be a folder owned by uid {os.geteuid()} "
                              "(not a link, not another account's)")
    loose = bool(st.st_mode & 0o077)
    if loose:
        os.chmod(directory, 0o700)
    return loose


def _files_ok(paths, now):
    from cryptography import x509

    for path in paths.values():
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return False
        if not stat.S_ISREG(st.st_mode) or not _owned_by_me(st) or st.st_mode & 0o077:
            return False
    try:
        for name in ("ca", "cert"):
            with open(paths[name], "rb") as f:
                cert = x509.load_pem_x509_certificate(f.read())
            if cert.not_valid_after_utc - now < datetime.timedelta(days=RENEW_DAYS):
                return False
        with open(paths["key"], "rb") as f:
            from cryptography.hazmat.primitives.serialization import load_pem_private_key

            load_pem_private_key(f.read(), password=None)
    except (ValueError, TypeError, OSError):
        return False
    return True


def make_credentials(owner, now=None):
    """A fresh CA and one certificate it signed: ``{"ca": pem, "cert": pem, "key": pem}`` (pure, in memory)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = now or datetime.datetime.now(datetime.UTC)
    start, end = now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=VALID_DAYS)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"deepvre Dask CA of {owner}")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(start).not_valid_after(end)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                       crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"deepvre Dask {owner}")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                  ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("dask-internal")]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    return {
        "ca": ca.public_bytes(pem),
        "cert": cert.public_bytes(pem),
        "key": key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    }  # ca_key goes out of scope here: never written


def _write_private(path, data):
    """Write ``data`` to ``path`` as a new 0600 file, atomically (never through a link)."""
    tmp = f"{path}.tmp-{os.getpid()}"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


@contextlib.contextmanager
def _locked(directory):
    fd = os.open(os.path.join(directory, ".lock"), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def tls_files(directory=None):
    """``{"ca", "cert", "key"}`` paths of the user's credentials, made or renewed if needed."""
    directory = tls_directory(directory)
    loose = _check_folder(directory)
    paths = {name: os.path.join(directory, file) for name, file in FILES.items()}
    with _locked(directory):
        if loose or not _files_ok(paths, datetime.datetime.now(datetime.UTC)):
            creds = make_credentials(_account())
            for name in ("key", "cert", "ca"):
                _write_private(paths[name], creds[name])
    return paths


def user_security(directory=None):
    """``distributed.security.Security`` for every role (client, scheduler, worker) of the user's clusters."""
    from distributed.security import Security

    paths = tls_files(directory)
    roles = {f"tls_{role}_{part}": paths[part] for role in ("client", "scheduler", "worker") for part in ("cert", "key")}
    return Security(require_encryption=True, tls_ca_file=paths["ca"], **roles)


def cli_options(directory=None):
    """``dask scheduler`` / ``dask worker`` options for a cluster started by hand with the same credentials."""
    paths = tls_files(directory)
    return ["--tls-ca-file", paths["ca"], "--tls-cert", paths["cert"], "--tls-key", paths["key"]]
