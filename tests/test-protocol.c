/* common/pt-protocol: the one definition of the signalling protocol, held
 * against docs/protocol.md — every message the document shows parses and
 * passes the module's message table, every request and event of the table is
 * shown in the document, every message the table describes can be built, and
 * the document's error table and the module's are the same. */
#include <gst/check/gstcheck.h>
#include <string.h>

#include "common/pt-protocol.h"
#include "peertree/peertree-error.h"

/* Every JSON message of the document's code blocks (up to GET /status, which
 * is plain HTTP), in order. */
static GPtrArray *
doc_messages (void)
{
  g_autofree gchar *text = NULL;
  g_autoptr (GError) error = NULL;
  g_auto (GStrv) lines = NULL;
  GPtrArray *out = g_ptr_array_new_with_free_func ((GDestroyNotify) json_object_unref);
  gboolean in_block = FALSE;
  g_autoptr (GString) pending = g_string_new (NULL);

  fail_unless (g_file_get_contents (PROTOCOL_MD, &text, NULL, &error), "%s",
      error ? error->message : "");
  lines = g_strsplit (text, "\n", -1);
  for (guint i = 0; lines[i]; i++) {
    const gchar *l = lines[i];

    if (g_str_has_prefix (l, "## GET /status"))
      break;
    if (g_str_has_prefix (l, "```")) {
      fail_if (in_block && pending->len > 0, "unfinished JSON in docs: %s", pending->str);
      in_block = !in_block && g_str_has_prefix (l, "```json");
      continue;
    }
    if (!in_block)
      continue;
    g_string_append (pending, l);
    g_string_append_c (pending, '\n');
    {
      g_autoptr (JsonParser) parser = json_parser_new ();

      if (json_parser_load_from_data (parser, pending->str, -1, NULL)) {
        JsonNode *root = json_parser_get_root (parser);

        fail_unless (root && JSON_NODE_HOLDS_OBJECT (root), "not an object: %s", pending->str);
        g_ptr_array_add (out, json_object_ref (json_node_get_object (root)));
        g_string_truncate (pending, 0);
      }
    }
  }
  fail_unless (pending->len == 0, "unfinished JSON in docs: %s", pending->str);
  return out;
}

GST_START_TEST (test_every_doc_message_checks)
{
  g_autoptr (GPtrArray) msgs = doc_messages ();
  guint n_checked = 0;

  fail_unless (msgs->len > 40, "only %u messages found in %s", msgs->len, PROTOCOL_MD);
  for (guint i = 0; i < msgs->len; i++) {
    JsonObject *m = g_ptr_array_index (msgs, i);
    PtFault f = { 0 };
    g_autofree gchar *s = json_to_string (json_node_init_object (json_node_alloc (), m), FALSE);

    fail_unless (pt_message_check (m, &f), "docs message %s: %s: %s", s, f.code, f.message);
    pt_fault_clear (&f);
    n_checked++;
  }
  GST_INFO ("%u messages of docs/protocol.md checked", n_checked);
}
GST_END_TEST;

/* Both ways: each request and event of the table is shown in the document. */
GST_START_TEST (test_every_spec_is_documented)
{
  g_autoptr (GPtrArray) msgs = doc_messages ();

  for (const PtMessageSpec *s = pt_message_specs (); s->name; s++) {
    gboolean found = FALSE;

    for (guint i = 0; i < msgs->len && !found; i++) {
      JsonObject *m = g_ptr_array_index (msgs, i);
      const char *type = pt_str (m, PT_F_TYPE);

      if (s->kind == PT_KIND_EVENT)
        found = g_strcmp0 (type, PT_TYPE_EVENT) == 0 &&
            g_strcmp0 (pt_str (m, PT_F_EVENT), s->name) == 0;
      else
        found = g_strcmp0 (type, s->name) == 0 &&
            (strcmp (s->name, PT_REQ_REPLY) != 0 || json_object_has_member (m, PT_F_ACK_ID));
    }
    fail_unless (found, "%s \"%s\" has no example in docs/protocol.md",
        s->kind == PT_KIND_EVENT ? "event" : "request", s->name);
  }
}
GST_END_TEST;

/* Every field of the table appears in at least one example of its message,
 * so that a new field cannot be added to the table without being shown. */
GST_START_TEST (test_every_field_is_documented)
{
  g_autoptr (GPtrArray) msgs = doc_messages ();
  g_autoptr (GString) missing = g_string_new (NULL);

  for (const PtMessageSpec *s = pt_message_specs (); s->name; s++) {
    for (guint f = 0; f < PT_MAX_FIELDS && s->fields[f].name; f++) {
      gboolean found = FALSE;

      for (guint i = 0; i < msgs->len && !found; i++) {
        JsonObject *m = g_ptr_array_index (msgs, i);
        const char *type = pt_str (m, PT_F_TYPE);
        gboolean same = s->kind == PT_KIND_EVENT ?
            g_strcmp0 (type, PT_TYPE_EVENT) == 0 &&
            g_strcmp0 (pt_str (m, PT_F_EVENT), s->name) == 0 :
            g_strcmp0 (type, s->name) == 0 &&
            (strcmp (s->name, PT_REQ_REPLY) != 0 || json_object_has_member (m, PT_F_ACK_ID));

        found = same && json_object_has_member (m, s->fields[f].name);
      }
      if (!found)
        g_string_append_printf (missing, " %s.%s", s->name, s->fields[f].name);
    }
  }
  fail_unless (missing->len == 0, "fields without an example in docs/protocol.md:%s",
      missing->str);
}
GST_END_TEST;

static void
set_sample (JsonObject *o, const PtFieldSpec *fs)
{
  switch (fs->type) {
    case PT_FIELD_STRING:
      json_object_set_string_member (o, fs->name, "some text");
      break;
    case PT_FIELD_ID:
      json_object_set_string_member (o, fs->name, "viewer-7");
      break;
    case PT_FIELD_NAME:
      json_object_set_string_member (o, fs->name, "first one");
      break;
    case PT_FIELD_UINT:
      json_object_set_int_member (o, fs->name, 7);
      break;
    case PT_FIELD_BOOL:
      json_object_set_boolean_member (o, fs->name, TRUE);
      break;
    case PT_FIELD_NUMBER:
      json_object_set_double_member (o, fs->name, 0.5);
      break;
    case PT_FIELD_OBJECT:
      json_object_set_object_member (o, fs->name, json_object_new ());
      break;
    case PT_FIELD_ARRAY:
      json_object_set_array_member (o, fs->name, json_array_new ());
      break;
    case PT_FIELD_ANY:
      json_object_set_null_member (o, fs->name);
      break;
  }
}

static JsonObject *
build (const PtMessageSpec *s, gint skip, gboolean wrong_type)
{
  JsonObject *o = s->kind == PT_KIND_EVENT ? pt_msg_event_new (s->name) :
      pt_msg_request_new (s->name, 42);

  for (gint i = 0; i < PT_MAX_FIELDS && s->fields[i].name; i++) {
    if (i != skip)
      set_sample (o, &s->fields[i]);
    else if (wrong_type)
      json_object_set_array_member (o, s->fields[i].name, json_array_new ());
  }
  return o;
}

/* Every message of the table builds, and is refused without a required
 * field or with a field of the wrong type. */
GST_START_TEST (test_every_spec_builds)
{
  for (const PtMessageSpec *s = pt_message_specs (); s->name; s++) {
    g_autoptr (JsonObject) full = build (s, -1, FALSE);
    PtFault f = { 0 };

    fail_unless (pt_message_check (full, &f), "%s: %s", s->name, f.message);
    for (gint i = 0; i < PT_MAX_FIELDS && s->fields[i].name; i++) {
      g_autoptr (JsonObject) missing = build (s, i, FALSE);
      g_autoptr (JsonObject) wrong = build (s, i, TRUE);

      if (s->fields[i].required) {
        fail_if (pt_message_check (missing, &f), "%s without %s accepted", s->name,
            s->fields[i].name);
        fail_unless_equals_string (f.code, PT_ERR_BAD_REQUEST);
      } else {
        fail_unless (pt_message_check (missing, &f), "%s without optional %s: %s", s->name,
            s->fields[i].name, f.message);
      }
      if (s->fields[i].type != PT_FIELD_ANY && s->fields[i].type != PT_FIELD_ARRAY)
        fail_if (pt_message_check (wrong, &f), "%s with an array for %s accepted", s->name,
            s->fields[i].name);
    }
    pt_fault_clear (&f);
  }
}
GST_END_TEST;

GST_START_TEST (test_envelopes)
{
  const char *bad[] = {
    "{}",
    "{\"type\": 7}",
    "{\"type\": \"frobnicate\", \"id\": 1}",
    "{\"type\": \"join\", \"treeId\": \"t\"}",                 /* no id */
    "{\"type\": \"join\", \"id\": -1, \"treeId\": \"t\"}",
    "{\"type\": \"join\", \"id\": 1, \"treeId\": \"a b\"}",    /* invalid id */
    "{\"type\": \"event\", \"event\": \"nope\"}",
    "{\"type\": \"reply\", \"id\": 1, \"ok\": true}",           /* no result */
    "{\"type\": \"reply\", \"id\": 1, \"ok\": false, \"error\": {\"code\": \"limit\"}}",
  };
  const char *good[] = {
    "{\"type\": \"reply\", \"id\": null, \"ok\": false, "
        "\"error\": {\"code\": \"bad-json\", \"message\": \"x\"}}",
    "{\"type\": \"room-join\", \"id\": 3, \"room\": \"caf\xc3\xa9 \xe2\x98\x95\"}",
  };

  for (guint i = 0; i < G_N_ELEMENTS (bad); i++) {
    g_autoptr (JsonNode) n = json_from_string (bad[i], NULL);
    PtFault f = { 0 };

    fail_if (pt_message_check (json_node_get_object (n), &f), "accepted: %s", bad[i]);
    fail_unless (f.code != NULL && f.message != NULL);
    pt_fault_clear (&f);
  }
  for (guint i = 0; i < G_N_ELEMENTS (good); i++) {
    g_autoptr (JsonNode) n = json_from_string (good[i], NULL);
    PtFault f = { 0 };

    fail_unless (pt_message_check (json_node_get_object (n), &f), "%s: %s", good[i], f.message);
  }
}
GST_END_TEST;

/* The error table of docs/protocol.md and the module's are the same, and
 * every code maps to a specific PEER_TREE_ERROR code. */
GST_START_TEST (test_error_codes)
{
  g_autofree gchar *text = NULL;
  g_autoptr (GHashTable) doc = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  g_autoptr (GRegex) re = g_regex_new ("`([a-z-]+)`", 0, 0, NULL);
  const char *const *codes = pt_error_codes ();
  const char *start, *end;
  guint n = 0;

  fail_unless (g_file_get_contents (PROTOCOL_MD, &text, NULL, NULL));
  start = strstr (text, "## Error codes");
  fail_unless (start != NULL);
  end = strstr (start + 1, "\n## ");
  fail_unless (end != NULL);
  {
    g_autofree gchar *section = g_strndup (start, end - start);
    g_auto (GStrv) lines = g_strsplit (section, "\n", -1);

    for (guint i = 0; lines[i]; i++) {
      g_autoptr (GMatchInfo) mi = NULL;
      g_auto (GStrv) cells = NULL;

      if (!g_str_has_prefix (lines[i], "| `"))
        continue;
      cells = g_strsplit (lines[i], "|", 3);
      g_regex_match (re, cells[1], 0, &mi);
      while (g_match_info_matches (mi)) {
        g_hash_table_add (doc, g_match_info_fetch (mi, 1));
        g_match_info_next (mi, NULL);
      }
    }
  }
  for (; codes[n]; n++) {
    fail_unless (g_hash_table_contains (doc, codes[n]), "%s is not in docs/protocol.md",
        codes[n]);
    fail_if (pt_error_code_to_peer_tree_error (codes[n]) == PEER_TREE_ERROR_FAILED,
        "%s maps to PEER_TREE_ERROR_FAILED", codes[n]);
  }
  fail_unless_equals_int (g_hash_table_size (doc), n);
  fail_unless_equals_int (pt_error_code_to_peer_tree_error ("no-such-code"),
      PEER_TREE_ERROR_FAILED);
  fail_unless_equals_int (pt_error_code_to_peer_tree_error (NULL), PEER_TREE_ERROR_FAILED);
  fail_unless_equals_int (pt_error_code_to_peer_tree_error (PT_ERR_TREE_NOT_FOUND),
      PEER_TREE_ERROR_TREE_NOT_FOUND);
}
GST_END_TEST;

GST_START_TEST (test_names_and_ids)
{
  g_autofree gchar *long_name = g_strnfill (PT_NAME_MAX_LEN + 1, 'n');
  g_autofree gchar *max_name = g_strnfill (PT_NAME_MAX_LEN, 'n');
  g_autofree gchar *long_id = g_strnfill (PT_ID_MAX_LEN + 1, 'i');
  g_autofree gchar *max_id = g_strnfill (PT_ID_MAX_LEN, 'i');

  fail_unless (pt_valid_name ("first one"));
  fail_unless (pt_valid_name ("caf\xc3\xa9 \xe2\x98\x95 / #1"));
  fail_unless (pt_valid_name (max_name));
  fail_if (pt_valid_name (""));
  fail_if (pt_valid_name (NULL));
  fail_if (pt_valid_name (long_name));
  fail_if (pt_valid_name ("tab\there"));
  fail_if (pt_valid_name ("nl\n"));
  fail_if (pt_valid_name ("del\x7f"));
  fail_if (pt_valid_name ("c1\xc2\x85"));        /* U+0085, a C1 control */
  fail_if (pt_valid_name ("bad\xff utf-8"));
  fail_unless (pt_valid_id ("viewer-7.a_b:c@d"));
  fail_unless (pt_valid_id (max_id));
  fail_if (pt_valid_id ("first one"));
  fail_if (pt_valid_id (""));
  fail_if (pt_valid_id (long_id));
  fail_if (pt_valid_id ("caf\xc3\xa9"));
}
GST_END_TEST;

GST_START_TEST (test_frame_header)
{
  guint8 h[PT_FRAME_HEADER_LEN];
  guint32 id;
  guint8 op;

  pt_frame_header_write (h, 0x01020304, PT_OP_CREDIT);
  fail_unless (h[0] == 1 && h[1] == 2 && h[2] == 3 && h[3] == 4 && h[4] == PT_OP_CREDIT);
  fail_unless (pt_frame_header_read (h, sizeof h, &id, &op));
  fail_unless_equals_int (id, 0x01020304);
  fail_unless_equals_int (op, PT_OP_CREDIT);
  fail_if (pt_frame_header_read (h, PT_FRAME_HEADER_LEN - 1, &id, &op));
}
GST_END_TEST;

GST_START_TEST (test_json_depth)
{
  g_autofree gchar *open = g_strnfill (PT_MAX_JSON_DEPTH, '[');
  g_autofree gchar *close = g_strnfill (PT_MAX_JSON_DEPTH, ']');
  g_autofree gchar *ok = g_strconcat (open, close, NULL);
  GString *deep = g_string_new (NULL);

  fail_unless (pt_json_depth_ok (ok, strlen (ok)));
  for (int i = 0; i <= PT_MAX_JSON_DEPTH; i++)
    g_string_append_c (deep, '{');
  fail_if (pt_json_depth_ok (deep->str, deep->len));
  /* brackets inside strings do not count */
  g_string_assign (deep, "{\"a\":\"");
  for (int i = 0; i <= PT_MAX_JSON_DEPTH; i++)
    g_string_append (deep, "[\\\"");
  g_string_append (deep, "\"}");
  fail_unless (pt_json_depth_ok (deep->str, deep->len));
  /* closing brackets first buy no extra levels */
  g_string_assign (deep, "]]]]");
  for (int i = 0; i <= PT_MAX_JSON_DEPTH; i++)
    g_string_append_c (deep, '[');
  fail_if (pt_json_depth_ok (deep->str, deep->len));
  /* a NUL inside a string is refused (json-glib would cut the string there) */
  g_string_assign (deep, "{\"room\": \"a\\u0000\\u0007\"}");
  fail_if (pt_json_depth_ok (deep->str, deep->len));
  g_string_assign (deep, "{\"room\": \"a\\\\u0000\"}");   /* an escaped backslash, then text */
  fail_unless (pt_json_depth_ok (deep->str, deep->len));
  g_string_free (deep, TRUE);
}
GST_END_TEST;

static Suite *
protocol_suite (void)
{
  Suite *s = suite_create ("protocol");
  TCase *tc = tcase_create ("protocol");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_every_doc_message_checks);
  tcase_add_test (tc, test_every_spec_is_documented);
  tcase_add_test (tc, test_every_field_is_documented);
  tcase_add_test (tc, test_every_spec_builds);
  tcase_add_test (tc, test_envelopes);
  tcase_add_test (tc, test_error_codes);
  tcase_add_test (tc, test_names_and_ids);
  tcase_add_test (tc, test_frame_header);
  tcase_add_test (tc, test_json_depth);
  return s;
}

GST_CHECK_MAIN (protocol);
