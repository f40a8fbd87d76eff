/* json.h: msgpack objects as JSON text, for claimctl's --json output.
 *
 * The mapping: maps -> objects (a non-string key is written as its JSON text
 * in a string), arrays -> arrays, str -> string (escaped per RFC 8259; bytes
 * that are not UTF-8 become U+FFFD), bin -> base64 string, integers and
 * booleans as themselves, nil -> null, floats -> numbers (NaN and infinities
 * -> null), ext -> null.  The output is always valid JSON.
 */
#ifndef CF_CLI_JSON_H
#define CF_CLI_JSON_H

#include <msgpack.h>
#include <stdbool.h>
#include <stdio.h>

/* Write o to out.  indent 0: one line, no spaces (JSON lines); indent > 0:
 * pretty, that many spaces a level.  No trailing newline. */
void cf_json_print(FILE *out, const msgpack_object *o, int indent);

/* Person ids in every string written from now on (claimctl's default):
 * masked to their birth date (cf_json_mask), or as they are (--reveal). */
void cf_json_set_masking(bool on);
bool cf_json_masking(void);
/* When s[0..len) is a person id (Danish CPR, Norwegian fødselsnummer or
 * D-number) and masking is on: its birth-date digits (the first six) with
 * the rest X ("150114-XXXX"), into out (room for len + 1), and true;
 * false otherwise. */
bool cf_json_mask(const char *s, size_t len, char *out);
/* Write s[0..len) as a JSON string, quotes included. */
void cf_json_print_str(FILE *out, const char *s, size_t len);

/* Write s[0..len) as standard base64 (RFC 4648, padded), no quotes. */
void cf_json_print_base64(FILE *out, const unsigned char *s, size_t len);

#endif
