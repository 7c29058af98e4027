/* The load generator's latency histogram (see loadgen.h). */
#include <string.h>

#include "lg.h"

void lg_hist_init(struct lg_hist *h)
{
    memset(h, 0, sizeof *h);
}

static int bucket_of(uint64_t v)
{
    if (v < 2 * LG_SUB)
        return (int)v;
    const uint64_t top = (UINT64_C(1) << (LG_MAX_EXP + 1)) - 1;
    if (v > top)
        v = top;
    int k = 63 - __builtin_clzll(v);               /* 2^k <= v < 2^(k+1), k > LG_SUB_BITS */
    int shift = k - LG_SUB_BITS;
    int sub = (int)(v >> shift) - LG_SUB;          /* 0 .. LG_SUB-1 */
    return 2 * LG_SUB + (k - LG_SUB_BITS - 1) * LG_SUB + sub;
}

/* The midpoint of bucket i: the bucket's values are [low, low + width). */
static double midpoint_of(int i)
{
    if (i < 2 * LG_SUB)
        return i;                                  /* exact buckets hold one value */
    int j = i - 2 * LG_SUB;
    int shift = j / LG_SUB + 1;
    double low = (double)((uint64_t)(LG_SUB + j % LG_SUB) << shift);
    return low + (double)(UINT64_C(1) << shift) / 2;
}

void lg_hist_record(struct lg_hist *h, uint64_t ns)
{
    h->counts[bucket_of(ns)]++;
    if (h->count == 0 || ns < h->min)
        h->min = ns;
    if (ns > h->max)
        h->max = ns;
    h->count++;
    h->sum += (double)ns;
}

double lg_hist_percentile(const struct lg_hist *h, double percent)
{
    if (h->count == 0)
        return 0;
    /* The rank of the sample asked for, 1-based: ceil(count * percent / 100). */
    double want = (double)h->count * percent / 100.0;
    uint64_t rank = (uint64_t)want;
    if ((double)rank < want)
        rank++;
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (int i = 0; i < LG_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            double v = midpoint_of(i);
            if (v < (double)h->min)
                v = (double)h->min;
            if (v > (double)h->max)
                v = (double)h->max;
            return v;
        }
    }
    return (double)h->max;
}

void lg_hist_summarize(const struct lg_hist *h, struct al_load_result *res)
{
    res->latency_count = h->count;
    res->latency_min_us = h->count ? (double)h->min / 1e3 : 0;
    res->latency_max_us = (double)h->max / 1e3;
    res->latency_mean_us = h->count ? h->sum / (double)h->count / 1e3 : 0;
    res->latency_p50_us = lg_hist_percentile(h, 50) / 1e3;
    res->latency_p90_us = lg_hist_percentile(h, 90) / 1e3;
    res->latency_p99_us = lg_hist_percentile(h, 99) / 1e3;
    res->latency_p999_us = lg_hist_percentile(h, 99.9) / 1e3;
}
