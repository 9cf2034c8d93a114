/* peertree-server — the browser viewer: GET /watch/TREE-ID (the page) and
 * GET /peertree.js (the JavaScript client), from the binary's GResource.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "pt-server-private.h"

#include <libsoup/soup.h>
#include <string.h>

#include "pt-web-resources.h"

#define PT_WEB_PREFIX "/org/peertree/server/"

/* Serves the resource @name with @content_type, or 404 if it is missing. */
static void
serve_resource (SoupServerMessage *msg, const char *name, const char *content_type)
{
  g_autofree char *path = g_strconcat (PT_WEB_PREFIX, name, NULL);
  g_autoptr (GBytes) bytes = g_resources_lookup_data (path, G_RESOURCE_LOOKUP_FLAGS_NONE, NULL);
  if (!bytes) {
    soup_server_message_set_status (msg, SOUP_STATUS_NOT_FOUND, NULL);
    return;
  }
  SoupMessageHeaders *headers = soup_server_message_get_response_headers (msg);
  /* small files that change with the binary: revalidated on every load */
  soup_message_headers_replace (headers, "Cache-Control", "no-cache");
  soup_message_headers_replace (headers, "X-Content-Type-Options", "nosniff");
  soup_server_message_set_status (msg, SOUP_STATUS_OK, NULL);
  gsize len;
  const char *data = g_bytes_get_data (bytes, &len);
  soup_server_message_set_response (msg, content_type, SOUP_MEMORY_COPY, data, len);
}

static gboolean
method_is_get (SoupServerMessage *msg)
{
  const char *method = soup_server_message_get_method (msg);
  if (method == SOUP_METHOD_GET || method == SOUP_METHOD_HEAD)
    return TRUE;
  soup_server_message_set_status (msg, SOUP_STATUS_METHOD_NOT_ALLOWED, NULL);
  soup_message_headers_replace (soup_server_message_get_response_headers (msg), "Allow",
      "GET, HEAD");
  return FALSE;
}

/* GET /watch/TREE-ID: the page; it reads the tree id from its own URL. A
 * path whose last part is not a valid tree id is 404. */
static void
on_watch (SoupServer *soup, SoupServerMessage *msg, const char *path, GHashTable *query,
    gpointer user_data)
{
  (void) soup;
  (void) query;
  (void) user_data;
  if (!method_is_get (msg))
    return;
  const char *id = path + strlen ("/watch");
  if (*id == '/')
    id++;
  g_autofree char *tree_id = g_uri_unescape_string (id, NULL);
  if (!tree_id || !pt_valid_id (tree_id)) {
    soup_server_message_set_status (msg, SOUP_STATUS_NOT_FOUND, NULL);
    static const char text[] = "peertree-server: GET /watch/TREE-ID\n";
    soup_server_message_set_response (msg, "text/plain", SOUP_MEMORY_STATIC, text,
        sizeof text - 1);
    return;
  }
  serve_resource (msg, "watch.html", "text/html; charset=utf-8");
}

/* GET /peertree.js: the ES module the page imports, for any web app too. */
static void
on_script (SoupServer *soup, SoupServerMessage *msg, const char *path, GHashTable *query,
    gpointer user_data)
{
  (void) soup;
  (void) query;
  (void) user_data;
  if (!method_is_get (msg))
    return;
  if (strcmp (path, "/peertree.js") != 0) {
    soup_server_message_set_status (msg, SOUP_STATUS_NOT_FOUND, NULL);
    return;
  }
  serve_resource (msg, "peertree.js", "text/javascript; charset=utf-8");
}

void
pt_web_init (PtServer *self, SoupServer *soup)
{
  (void) self;
  /* referenced, so that the linker keeps the resource (registered by its
   * constructor) from the static library */
  g_return_if_fail (pt_web_get_resource () != NULL);
  soup_server_add_handler (soup, "/watch", on_watch, NULL, NULL);
  soup_server_add_handler (soup, "/peertree.js", on_script, NULL, NULL);
}
