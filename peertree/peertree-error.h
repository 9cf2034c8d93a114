/* libpeertree — the error domain, in a header of its own so that the
 * protocol module (common/pt-protocol.c) can map the server's error codes to
 * it without depending on the rest of the library.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/**
 * PEER_TREE_ERROR:
 *
 * Error domain of libpeertree. Errors in this domain are from the
 * #PeerTreeError enumeration; most of them carry a server error code.
 */
#define PEER_TREE_ERROR (peer_tree_error_quark ())
GQuark peer_tree_error_quark (void);

/**
 * PeerTreeError:
 * @PEER_TREE_ERROR_FAILED: any other error (the message says what).
 * @PEER_TREE_ERROR_BAD_REQUEST: the server refused a malformed request
 *   (codes `bad-json`, `bad-request`, `unknown-type`, `hello-required`,
 *   `already-hello`, `unsupported-version`).
 * @PEER_TREE_ERROR_DUPLICATE_CLIENT_ID: another connection holds this clientId.
 * @PEER_TREE_ERROR_INVALID_ID: a clientId or tree id is not well formed.
 * @PEER_TREE_ERROR_TREE_NOT_FOUND: no tree with this id.
 * @PEER_TREE_ERROR_TREE_EXISTS: a tree with this id exists already.
 * @PEER_TREE_ERROR_NOT_MEMBER: the client is not a member of that tree.
 * @PEER_TREE_ERROR_IS_ROOT: the operation makes no sense for the tree's source.
 * @PEER_TREE_ERROR_RELAY_REFUSED: signalling to a peer that is neither the
 *   client's parent nor one of its children.
 * @PEER_TREE_ERROR_LIMIT: a per-client or server limit was reached.
 * @PEER_TREE_ERROR_TIMEOUT: no reply in time.
 * @PEER_TREE_ERROR_CLOSED: the connection to the server is closed.
 * @PEER_TREE_ERROR_NOT_FOUND: the target (client, service, method, topic…) does not exist.
 * @PEER_TREE_ERROR_REMOTE: the other client refused or failed (the message says why).
 * @PEER_TREE_ERROR_EXISTS: a service or topic with this name exists already.
 * @PEER_TREE_ERROR_NOT_PERMITTED: only the provider of a service may do that.
 * @PEER_TREE_ERROR_DISCONNECTED: the other client disconnected before answering.
 * @PEER_TREE_ERROR_UNAUTHORIZED: the server wants a token and the client's
 *   is missing, malformed, signed with another key, or expired (code
 *   `unauthorized`, at hello).
 * @PEER_TREE_ERROR_FORBIDDEN: the client's token does not grant this
 *   (code `forbidden`).
 *
 * Error codes of #PEER_TREE_ERROR.
 */
typedef enum {
  PEER_TREE_ERROR_FAILED,
  PEER_TREE_ERROR_BAD_REQUEST,
  PEER_TREE_ERROR_DUPLICATE_CLIENT_ID,
  PEER_TREE_ERROR_INVALID_ID,
  PEER_TREE_ERROR_TREE_NOT_FOUND,
  PEER_TREE_ERROR_TREE_EXISTS,
  PEER_TREE_ERROR_NOT_MEMBER,
  PEER_TREE_ERROR_IS_ROOT,
  PEER_TREE_ERROR_RELAY_REFUSED,
  PEER_TREE_ERROR_LIMIT,
  PEER_TREE_ERROR_TIMEOUT,
  PEER_TREE_ERROR_CLOSED,
  PEER_TREE_ERROR_NOT_FOUND,
  PEER_TREE_ERROR_REMOTE,
  PEER_TREE_ERROR_EXISTS,
  PEER_TREE_ERROR_NOT_PERMITTED,
  PEER_TREE_ERROR_DISCONNECTED,
  PEER_TREE_ERROR_UNAUTHORIZED,
  PEER_TREE_ERROR_FORBIDDEN,
} PeerTreeError;

G_END_DECLS
