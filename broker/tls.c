/*
 * tls.c — see tls.h.
 */
#include "broker/tls.h"

#include <openssl/err.h>
#include <string.h>

#include "broker/config.h"
#include "common/tm_log.h"

static int tls_password_cb(char *buf, int size, int rwflag, void *userdata)
{
	(void)rwflag;
	const char *pw = userdata;
	int n = (int)strlen(pw);
	if (n >= size)
		return 0;
	memcpy(buf, pw, (size_t)n);
	return n;
}

static void tls_log_error(const char *what, const char *path)
{
	char buf[256];
	unsigned long e = ERR_get_error();
	ERR_error_string_n(e, buf, sizeof(buf));
	tm_error("tls", "%s %s: %s", what, path, buf);
	ERR_clear_error();
}

SSL_CTX *tls_server_ctx_new(const struct tm_config *cfg)
{
	if (!cfg->ssl_keystore_location[0]) {
		tm_error("tls", "an SSL listener needs ssl.keystore.location (a PEM file with the private key and certificate chain)");
		return NULL;
	}
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx)
		return NULL;
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
	/* Read ahead: without it OpenSSL reads every record with two read()
	 * calls (its 5-byte header, then its body), 128 system calls per MiB of
	 * produce.  The read buffer stays at OpenSSL's default, one record and
	 * a little more: before each record OpenSSL 3.0 moves whatever is left
	 * in the buffer to its start, so a buffer of several records copies
	 * every byte 1.5 more times (a 64 KiB buffer: memmove 18.6 % of the
	 * broker's samples under TLS produce, 8.4 % with the default).
	 * Buffers are released when idle. */
	SSL_CTX_set_read_ahead(ctx, 1);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	if (cfg->ssl_key_password[0]) {
		SSL_CTX_set_default_passwd_cb(ctx, tls_password_cb);
		SSL_CTX_set_default_passwd_cb_userdata(ctx, (void *)cfg->ssl_key_password);
	}
	if (SSL_CTX_use_certificate_chain_file(ctx, cfg->ssl_keystore_location) != 1) {
		tls_log_error("ssl.keystore.location: cannot load the certificate chain from", cfg->ssl_keystore_location);
		goto err;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, cfg->ssl_keystore_location, SSL_FILETYPE_PEM) != 1) {
		tls_log_error("ssl.keystore.location: cannot load the private key from (check ssl.key.password)",
			      cfg->ssl_keystore_location);
		goto err;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		tls_log_error("ssl.keystore.location: the private key does not match the certificate in",
			      cfg->ssl_keystore_location);
		goto err;
	}
	bool want = !strcmp(cfg->ssl_client_auth, "requested") || !strcmp(cfg->ssl_client_auth, "required");
	if (want) {
		if (!cfg->ssl_truststore_location[0]) {
			tm_error("tls", "ssl.client.auth=%s needs ssl.truststore.location (PEM CA certificates)", cfg->ssl_client_auth);
			goto err;
		}
		if (SSL_CTX_load_verify_locations(ctx, cfg->ssl_truststore_location, NULL) != 1) {
			tls_log_error("ssl.truststore.location: cannot load CA certificates from", cfg->ssl_truststore_location);
			goto err;
		}
		int mode = SSL_VERIFY_PEER;
		if (!strcmp(cfg->ssl_client_auth, "required"))
			mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
		SSL_CTX_set_verify(ctx, mode, NULL);
	}
	return ctx;
err:
	SSL_CTX_free(ctx);
	return NULL;
}
