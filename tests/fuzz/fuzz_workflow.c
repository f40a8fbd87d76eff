/* fuzz_workflow.c: the workflow loader on arbitrary bytes.  It must never
 * crash, leak or read out of bounds, and must either compile a definition
 * with no diagnostics or refuse with at least one. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "cf_err.h"
#include "workflow.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cf_wf_t *wf = NULL;
    cf_diags_t d = {0};
    int rc = cf_wf_load_buffer("fuzz.yaml", (const char *)data, size, &wf, &d);
    if (rc == 0 && (wf == NULL || d.n != 0))
        abort();
    if (rc == CF_EBADREQ && (wf != NULL || d.n == 0))
        abort();
    if (wf) {
        /* walk the model: every index it holds must be in range */
        for (size_t s = 0; s < wf->nstates; s++)
            for (size_t i = 0; i < wf->states[s].nevents; i++) {
                int to = wf->states[s].events[i].to;
                if (to >= (int)wf->nstates || to < CF_WF_PREVIOUS)
                    abort();
            }
    }
    cf_wf_destroy(&wf);
    cf_diags_clear(&d);
    return 0;
}
