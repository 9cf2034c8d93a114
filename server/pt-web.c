/* peertree-server — the browser viewer: GET /watch/TREE-ID (the page) and
 * GET /peertree.js (the JavaScript client), from the binary's GResource.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "pt-server-private.h"

#include <libsoup/soup.h>
#include <string.h>

#include "pt-resources.h"

/* GET /watch/TREE-ID: the page; it reads the tree id from its own URL. A
 * path whose last part is not a valid tree id is 404. */
static void
on_watch (SoupServer *soup, SoupServerMessage *msg, const char *path, GHashTable *query,
    gpointer user_data)
{
  (void) soup;
  (void) query;
  (void) user_data;
  if (!pt_http_check_get (msg))
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
  pt_http_serve_resource (msg, "watch.html", "text/html; charset=utf-8");
}

/* GET /peertree.js: the ES module the page imports, for any web app too. */
static void
on_script (SoupServer *soup, SoupServerMessage *msg, const char *path, GHashTable *query,
    gpointer user_data)
{
  (void) soup;
  (void) query;
  (void) user_data;
  if (!pt_http_check_get (msg))
    return;
  if (strcmp (path, "/peertree.js") != 0) {
    soup_server_message_set_status (msg, SOUP_STATUS_NOT_FOUND, NULL);
    return;
  }
  pt_http_serve_resource (msg, "peertree.js", "text/javascript; charset=utf-8");
}

void
pt_web_init (PtServer *self, SoupServer *soup)
{
  (void) self;
  /* referenced, so that the linker keeps the resource (registered by its
   * constructor) from the static library */
  g_return_if_fail (pt_server_get_resource () != NULL);
  soup_server_add_handler (soup, "/watch", on_watch, NULL, NULL);
  soup_server_add_handler (soup, "/peertree.js", on_script, NULL, NULL);
}
