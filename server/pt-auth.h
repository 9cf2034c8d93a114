/* peertree-server — tokens: JSON Web Tokens (compact JWS, HS256) that bind a
 * clientId and grant rights; signing (the token CLI, tests) and verifying
 * (hello, GET /status). Pure: no server state.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * The signature is HMAC-SHA256 (GLib's GHmac) over the first two parts of
 * the token, compared in constant time; parts are base64url without padding
 * (RFC 7515). Only "alg": "HS256" is accepted. The claims are documented in
 * docs/protocol.md (Tokens and rights).
 */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>

G_BEGIN_DECLS

#define PT_AUTH_MIN_KEY_LEN 32       /* bytes: HS256 wants a key of at least 256 bits */
#define PT_AUTH_MAX_TOKEN_LEN 8192

#define PT_AUTH_ERROR (pt_auth_error_quark ())
GQuark pt_auth_error_quark (void);

typedef enum {
  PT_AUTH_ERROR_MALFORMED,   /* not a compact JWS, bad base64url or JSON, bad claims */
  PT_AUTH_ERROR_ALGORITHM,   /* "alg" is not HS256 */
  PT_AUTH_ERROR_SIGNATURE,   /* signed with another key, or altered */
  PT_AUTH_ERROR_EXPIRED,     /* exp is past */
  PT_AUTH_ERROR_NOT_YET,     /* nbf is to come */
  PT_AUTH_ERROR_KEY,         /* the key file cannot be read or is too short */
} PtAuthError;

/* What a verified token grants. Every pattern list is NULL-terminated (never
 * NULL: empty when the claim is absent); patterns are
 * g_pattern_match_simple() globs ('*' any run, '?' one character). */
typedef struct {
  char *sub;                 /* the clientId it binds */
  gint64 exp, nbf;           /* seconds since the epoch; nbf 0: none */
  gboolean admin;            /* every right, GET /status, the peertree service, list-clients */
  GStrv publish, view, relay;        /* trees.publish / view / relay: tree ids */
  GStrv rooms;               /* rooms: room names (room-join, room-emit) */
  GStrv clients;             /* clients: clientIds addressed (emit, add-target, stream-open, ...) */
  GStrv provide, call, subscribe;    /* services.provide / call: service names;
                                      * services.subscribe: "SERVICE/TOPIC" */
} PtGrants;

void pt_grants_free (PtGrants *g);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (PtGrants, pt_grants_free)

/* Whether one of @patterns matches @name. */
gboolean pt_grants_match (GStrv patterns, const char *name);

/* Reads a key file: its bytes less trailing newlines ('\n', '\r'). At least
 * PT_AUTH_MIN_KEY_LEN bytes. */
GBytes *pt_auth_load_key (const char *path, GError **error);

/* Verifies @token against @key at time @now (seconds since the epoch) and
 * returns its grants, or NULL with @error (PT_AUTH_ERROR). */
PtGrants *pt_auth_verify (GBytes *key, const char *token, gint64 now, GError **error);

/* Signs @claims (any JSON object) with @key: a compact JWS, header
 * {"alg":"HS256","typ":"JWT"}. */
char *pt_auth_sign (GBytes *key, JsonObject *claims);

G_END_DECLS
