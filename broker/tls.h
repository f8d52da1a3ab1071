/*
 * tls.h — TLS for SSL listeners (OpenSSL), the way Kafka configures it with
 * PEM files: ssl.keystore.location holds this node's private key and its
 * certificate chain (ssl.key.password if the key is encrypted);
 * ssl.truststore.location holds the CA certificates that client
 * certificates must chain to when ssl.client.auth is requested or required.
 * TLS 1.2 and 1.3 only.
 */
#ifndef TM_BROKER_TLS_H
#define TM_BROKER_TLS_H

#include <openssl/ssl.h>

struct tm_config;

/* Builds the server context; NULL (with a log line naming the setting) on error. */
SSL_CTX *tls_server_ctx_new(const struct tm_config *cfg);

#endif
