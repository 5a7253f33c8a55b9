/* Network safety rules shared by the HTTP and RTSP servers: where they may
 * listen, who may talk to them, how big a request may be.
 *
 *   NetAuth *auth = net_auth_new("0.0.0.0", token, &error);  // refuses: no token
 *   if (net_auth_check(auth, authorization_header, query_token) != NET_AUTH_OK) ... 401
 *
 * Policy: a server binds to 127.0.0.1 unless told otherwise. Bound to any
 * other address it refuses to start without an access token. When a token
 * is configured it is required on every address, loopback included. */
#ifndef KESTREL_NET_AUTH_H
#define KESTREL_NET_AUTH_H

#include <glib.h>

#define NET_DEFAULT_ADDRESS "127.0.0.1"
/* A token shorter than this is too easy to guess over a LAN. */
#define NET_TOKEN_MIN_LENGTH 16
#define NET_TOKEN_MAX_LENGTH 256
/* Requests are GET/HEAD with a short URL and no body. */
#define NET_MAX_URI_LENGTH 2048
#define NET_MAX_HEADER_BYTES 8192
#define NET_DEFAULT_MAX_CLIENTS 64

typedef enum {
  NET_AUTH_OK,
  NET_AUTH_MISSING, /* a token is required and none was given */
  NET_AUTH_WRONG    /* a token was given and it does not match */
} NetAuthResult;

typedef struct NetAuth NetAuth;

/* Checks the policy for a server about to listen on address (NULL:
 * 127.0.0.1). token may be NULL or "" (none). Errors name the fix. */
NetAuth *net_auth_new(const char *address, const char *token, GError **error);
void net_auth_free(NetAuth *auth);
const char *net_auth_address(const NetAuth *auth);
gboolean net_auth_required(const NetAuth *auth);
/* authorization: the Authorization header ("Bearer T", or "Basic
 * base64(any-user:T)" for RTSP clients that only speak Basic); query_token:
 * the ?token= value. Either may be NULL. Compared in constant time. */
NetAuthResult net_auth_check(const NetAuth *auth, const char *authorization,
                             const char *query_token);

/* TRUE for 127.0.0.0/8, ::1 and "localhost". */
gboolean net_address_is_loopback(const char *address);
/* "ADDR:PORT", "[V6]:PORT" or "PORT" (then 127.0.0.1). Port 0 is allowed
 * (the system picks one; tests use it). */
gboolean net_parse_listen(const char *spec, char **address, guint *port, GError **error);
/* The value of ?token= in a raw query string (URL-decoded), or NULL. */
char *net_query_token(const char *query);

#endif
