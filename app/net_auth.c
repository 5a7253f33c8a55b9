/* Who may use the kiosk's network servers: the listen-address policy and
 * the access-token check shared by HTTP and RTSP (see net_auth.h). */
#include "net_auth.h"

#include <gio/gio.h>
#include <stdlib.h>
#include <string.h>

struct NetAuth {
  char *address;
  char *token; /* NULL: open (loopback only) */
};

gboolean net_address_is_loopback(const char *address) {
  if (!address || !*address)
    return TRUE; /* the default, 127.0.0.1 */
  if (!g_ascii_strcasecmp(address, "localhost"))
    return TRUE;
  GInetAddress *a = g_inet_address_new_from_string(address);
  if (!a)
    return FALSE;
  gboolean loop = g_inet_address_get_is_loopback(a);
  g_object_unref(a);
  return loop;
}

NetAuth *net_auth_new(const char *address, const char *token, GError **error) {
  if (!address || !*address)
    address = NET_DEFAULT_ADDRESS;
  gboolean have_token = token && *token;
  if (have_token) {
    size_t n = strlen(token);
    if (n < NET_TOKEN_MIN_LENGTH || n > NET_TOKEN_MAX_LENGTH) {
      g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                  "[network] token: must be %d to %d characters (it is %zu); make one with "
                  "`head -c 24 /dev/urandom | base64`",
                  NET_TOKEN_MIN_LENGTH, NET_TOKEN_MAX_LENGTH, n);
      return NULL;
    }
    /* It travels in headers and URLs: printable ASCII without separators
     * keeps it from being mangled or splitting a header. */
    for (const char *p = token; *p; p++) {
      if (*p <= ' ' || *p > '~' || strchr("\"&?#%\\,;", *p)) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                    "[network] token: use letters, digits and - _ . + / = only");
        return NULL;
      }
    }
  }
  if (!net_address_is_loopback(address) && !have_token) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_PERMISSION_DENIED,
                "listening on %s (not loopback) needs an access token: set [network] token in "
                "the config file, or listen on 127.0.0.1",
                address);
    return NULL;
  }
  NetAuth *auth = g_new0(NetAuth, 1);
  auth->address = g_strdup(address);
  auth->token = have_token ? g_strdup(token) : NULL;
  return auth;
}

void net_auth_free(NetAuth *auth) {
  if (!auth)
    return;
  if (auth->token)
    memset(auth->token, 0, strlen(auth->token));
  g_free(auth->token);
  g_free(auth->address);
  g_free(auth);
}

const char *net_auth_address(const NetAuth *auth) {
  return auth->address;
}

gboolean net_auth_required(const NetAuth *auth) {
  return auth->token != NULL;
}

/* Time depends only on the lengths, never on where the first difference is. */
static gboolean same_secret(const char *given, size_t given_len, const char *want) {
  size_t want_len = strlen(want);
  unsigned diff = given_len != want_len;
  for (size_t i = 0; i < want_len; i++)
    diff |= (unsigned char)want[i] ^ (unsigned char)(i < given_len ? given[i] : 0);
  return diff == 0;
}

static gboolean check_basic(const NetAuth *auth, const char *b64) {
  size_t n = strlen(b64);
  if (n == 0 || n > 4 * NET_TOKEN_MAX_LENGTH)
    return FALSE;
  gsize len = 0;
  guchar *raw = g_base64_decode(b64, &len);
  if (!raw)
    return FALSE;
  /* "user:password": any user name, the token as the password. */
  const guchar *colon = memchr(raw, ':', len);
  gboolean ok =
      colon && same_secret((const char *)colon + 1, len - (gsize)(colon + 1 - raw), auth->token);
  memset(raw, 0, len);
  g_free(raw);
  return ok;
}

NetAuthResult net_auth_check(const NetAuth *auth, const char *authorization,
                             const char *query_token) {
  if (!auth->token)
    return NET_AUTH_OK;
  gboolean given = FALSE;
  if (authorization) {
    while (*authorization == ' ')
      authorization++;
    if (!g_ascii_strncasecmp(authorization, "Bearer ", 7)) {
      const char *t = authorization + 7;
      while (*t == ' ')
        t++;
      size_t n = strlen(t);
      while (n && t[n - 1] == ' ')
        n--;
      given = TRUE;
      if (same_secret(t, n, auth->token))
        return NET_AUTH_OK;
    } else if (!g_ascii_strncasecmp(authorization, "Basic ", 6)) {
      given = TRUE;
      if (check_basic(auth, authorization + 6))
        return NET_AUTH_OK;
    }
  }
  if (query_token) {
    given = TRUE;
    if (same_secret(query_token, strlen(query_token), auth->token))
      return NET_AUTH_OK;
  }
  return given ? NET_AUTH_WRONG : NET_AUTH_MISSING;
}

gboolean net_parse_listen(const char *spec, char **address, guint *port, GError **error) {
  const char *port_text = NULL;
  g_autofree char *addr = NULL;
  if (!spec || !*spec)
    goto bad;
  if (spec[0] == '[') {
    const char *close = strchr(spec, ']');
    if (!close || close[1] != ':')
      goto bad;
    addr = g_strndup(spec + 1, (gsize)(close - spec - 1));
    port_text = close + 2;
  } else {
    const char *colon = strrchr(spec, ':');
    if (colon && strchr(spec, ':') != colon)
      goto bad; /* a bare IPv6 address needs brackets */
    if (colon) {
      addr = g_strndup(spec, (gsize)(colon - spec));
      port_text = colon + 1;
    } else {
      addr = g_strdup(NET_DEFAULT_ADDRESS);
      port_text = spec;
    }
  }
  if (!*addr) {
    g_free(addr);
    addr = g_strdup(NET_DEFAULT_ADDRESS);
  }
  char *end = NULL;
  guint64 p = g_ascii_strtoull(port_text, &end, 10);
  if (!*port_text || *end || p > 65535)
    goto bad;
  if (g_ascii_strcasecmp(addr, "localhost")) {
    GInetAddress *a = g_inet_address_new_from_string(addr);
    if (!a) {
      g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                  "'%s': '%s' is not an IP address (use e.g. 127.0.0.1:8080 or 0.0.0.0:8080)", spec,
                  addr);
      return FALSE;
    }
    g_object_unref(a);
  } else {
    g_free(addr);
    addr = g_strdup(NET_DEFAULT_ADDRESS);
  }
  *address = g_steal_pointer(&addr);
  *port = (guint)p;
  return TRUE;

bad:
  g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
              "'%s' is not ADDR:PORT (e.g. 127.0.0.1:8080, [::1]:8080, or a port alone)",
              spec ? spec : "");
  return FALSE;
}

char *net_query_token(const char *query) {
  if (!query)
    return NULL;
  g_auto(GStrv) parts = g_strsplit(query, "&", 64);
  for (int i = 0; parts[i]; i++) {
    if (g_str_has_prefix(parts[i], "token="))
      return g_uri_unescape_string(parts[i] + 6, NULL);
  }
  return NULL;
}
