/* fuzz_spec.c: the job-spec parser (spec_parse, core/spec.c), which sees every POST /jobs body.
 * Besides "no crash, no leak, no UB" it checks the documented round trip: for every spec that
 * parses, spec_to_json gives a text that parses again to a spec printing the same text. */
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "spec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    bz_spec s;
    bz_err e;
    bz_err_clear(&e);
    if (spec_parse(text, &s, &e) == 0) {
        (void)spec_param_count(&s);
        char *json = spec_to_json(&s);
        if (json) {
            bz_spec again;
            bz_err e2;
            bz_err_clear(&e2);
            if (spec_parse(json, &again, &e2)) fz_fail("spec_to_json output does not parse: %s: %s\n%s", e2.field, e2.msg, json);
            char *json2 = spec_to_json(&again);
            if (!json2 || strcmp(json, json2)) fz_fail("round trip changed the spec:\n%s\n%s", json, json2 ? json2 : "(null)");
            free(json2);
            free(json);
        }
    } else if (e.code == 0 || !e.msg[0]) {
        fz_fail("spec_parse failed without saying why (code %d)", e.code);
    }
    free(text);
    return 0;
}
