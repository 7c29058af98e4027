/* The load generator's view of the server under test: its CPU time and its
 * resident memory, read from /proc at the edges of the measured window, so
 * that "server CPU per operation" covers exactly the operations counted.
 * A server's children count too (the fork model): live ones through
 * /proc/PID/task/TID/children, exited ones through the parent's cutime and
 * cstime once it has reaped them. Live threads are read from schedstat, in
 * nanoseconds. */
#include <dirent.h>
#include <errno.h>
#include <linux/perf_event.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "lg.h"

/* Calls fn(pid, tid, arg) for every thread of process pid, until fn returns nonzero.
 * Returns 0 when the process is gone. */
static int each_thread(int pid, int (*fn)(int, int, void *), void *arg)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", pid);
    DIR *tasks = opendir(path);
    if (tasks == NULL)
        return 0;
    struct dirent *t;
    while ((t = readdir(tasks)) != NULL)
        if (t->d_name[0] != '.' && fn(pid, atoi(t->d_name), arg))
            break;
    closedir(tasks);
    return 1;
}

struct tree {
    void (*fn)(int, void *);
    void *arg;
};

static int visit_children(int pid, int tid, void *arg)
{
    struct tree *tree = arg;
    char children[96];
    snprintf(children, sizeof children, "/proc/%d/task/%d/children", pid, tid);
    FILE *f = fopen(children, "r");
    if (f == NULL)
        return 0;
    int child;
    while (fscanf(f, "%d", &child) == 1)
        tree->fn(child, tree->arg);
    fclose(f);
    return 0;
}

/* Calls fn(pid, arg) for pid and each of its live children. */
static void each_in_tree(int pid, void (*fn)(int, void *), void *arg)
{
    struct tree tree = { fn, arg };
    fn(pid, arg);
    each_thread(pid, visit_children, &tree);
}

struct sum {
    double value;
    int ok;
};

struct thread_time {
    struct sum *sum;
    int found;
};

static int add_schedstat(int pid, int tid, void *arg)
{
    struct thread_time *tt = arg;
    char stat[96];
    snprintf(stat, sizeof stat, "/proc/%d/task/%d/schedstat", pid, tid);
    FILE *f = fopen(stat, "r");
    if (f == NULL)
        return 0;
    unsigned long long ns;
    if (fscanf(f, "%llu", &ns) == 1) {
        tt->sum->value += (double)ns / 1e9;
        tt->found = 1;
    }
    fclose(f);
    return 0;
}

/* Adds the on-CPU nanoseconds of every thread of pid (/proc/PID/task/TID/schedstat):
 * exact, where utime and stime come in clock ticks (10 ms), too coarse for a one-second
 * window. Returns 0 when the scheduler's statistics are not there. */
static int add_thread_time(int pid, struct sum *sum)
{
    struct thread_time tt = { sum, 0 };
    each_thread(pid, add_schedstat, &tt);
    return tt.found;
}

static void add_cpu(int pid, void *arg)
{
    struct sum *sum = arg;
    char path[64], buf[1024];
    int exact = add_thread_time(pid, sum);
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* The command name may hold spaces and parentheses: fields start after the last ')'. */
    char *p = strrchr(buf, ')');
    if (p == NULL)
        return;
    unsigned long long v[4];
    /* state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt, then utime stime cutime cstime */
    if (sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %llu %llu",
               &v[0], &v[1], &v[2], &v[3]) != 4)
        return;
    /* Reaped children exist only as cutime + cstime, in ticks; the live threads' time is
     * utime + stime unless the exact figure was read above. */
    unsigned long long ticks = exact ? v[2] + v[3] : v[0] + v[1] + v[2] + v[3];
    sum->value += (double)ticks / (double)sysconf(_SC_CLK_TCK);
    sum->ok = 1;
}

static void add_rss(int pid, void *arg)
{
    struct sum *sum = arg;
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return;
    unsigned long long kib;
    while (fgets(line, sizeof line, f) != NULL)
        if (sscanf(line, "VmRSS: %llu kB", &kib) == 1) {
            sum->value += (double)kib * 1024.0;
            sum->ok = 1;
            break;
        }
    fclose(f);
}

double lg_proc_cpu(int pid)
{
    struct sum sum = { 0.0, 0 };
    each_in_tree(pid, add_cpu, &sum);
    return sum.ok ? sum.value : -1.0;
}

unsigned long long lg_proc_rss(int pid)
{
    struct sum sum = { 0.0, 0 };
    each_in_tree(pid, add_rss, &sum);
    return (unsigned long long)sum.value;
}

/* Instructions retired by the server over the window, from the CPU's own
 * counters (perf_event_open): one counter for user space and one for the
 * kernel on every thread of the server and of its live children, each with
 * `inherit`, so threads and processes started during the window count too
 * and an exited child's count folds into its parent's. Unlike CPU time,
 * an instruction count does not stretch when a noisy neighbour slows the
 * machine down, so it separates costs of a few percent that time cannot. */
static long open_counter(int tid, int kernel)
{
    struct perf_event_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.size = sizeof attr;
    attr.type = PERF_TYPE_HARDWARE;
    attr.config = PERF_COUNT_HW_INSTRUCTIONS;
    attr.inherit = 1;
    attr.exclude_hv = 1;
    attr.exclude_user = kernel ? 1 : 0;
    attr.exclude_kernel = kernel ? 0 : 1;
    attr.read_format = PERF_FORMAT_TOTAL_TIME_ENABLED | PERF_FORMAT_TOTAL_TIME_RUNNING;
    return syscall(SYS_perf_event_open, &attr, tid, -1, -1, PERF_FLAG_FD_CLOEXEC);
}

static int open_thread_counters(int pid, int tid, void *arg)
{
    (void)pid;
    struct lg_counters *k = arg;
    if (k->n == LG_MAX_COUNTED) {
        k->overflow = 1;
        return 1;
    }
    for (int kernel = 0; kernel < 2; kernel++) {
        long fd = open_counter(tid, kernel);
        if (fd < 0 && errno == ESRCH) {
            /* The thread ended since it was listed (a forked child done with its client):
             * it has no work left to count. */
            if (kernel == 1 && k->fds[0][k->n] >= 0)
                close(k->fds[0][k->n]);
            return 0;
        }
        k->fds[kernel][k->n] = (int)fd;
        if (fd < 0)
            k->failed[kernel] = 1;
    }
    k->n++;
    return 0;
}

static void open_process_counters(int pid, void *arg)
{
    each_thread(pid, open_thread_counters, arg);
}

void lg_counters_open(struct lg_counters *k, int pid)
{
    memset(k, 0, sizeof *k);
    each_in_tree(pid, open_process_counters, k);
}

/* The sum of one kind's counters, scaled up if the kernel had to share the
 * hardware counter with others (multiplexing); -1 when any could not be read. */
static double sum_counters(const struct lg_counters *k, int kernel)
{
    if (k->n == 0 || k->overflow || k->failed[kernel])
        return -1.0;
    double total = 0.0;
    for (int i = 0; i < k->n; i++) {
        uint64_t v[3];   /* value, time enabled, time running */
        if (read(k->fds[kernel][i], v, sizeof v) != (ssize_t)sizeof v)
            return -1.0;
        if (v[2] > 0 && v[2] < v[1])
            total += (double)v[0] * (double)v[1] / (double)v[2];
        else
            total += (double)v[0];
    }
    return total;
}

void lg_self_counters_open(int fds[2])
{
    for (int kernel = 0; kernel < 2; kernel++) {
        long fd = open_counter(0, kernel);   /* 0: the calling thread */
        fds[kernel] = fd < 0 ? -1 : (int)fd;
    }
}

double lg_self_counters_close(int fds[2])
{
    double total = 0.0;
    for (int kernel = 0; kernel < 2; kernel++) {
        uint64_t v[3];
        if (fds[kernel] < 0 || read(fds[kernel], v, sizeof v) != (ssize_t)sizeof v)
            total = -1.0;
        else if (total >= 0)
            total += v[2] > 0 && v[2] < v[1] ? (double)v[0] * (double)v[1] / (double)v[2] : (double)v[0];
        if (fds[kernel] >= 0)
            close(fds[kernel]);
        fds[kernel] = -1;
    }
    return total;
}

void lg_counters_close(struct lg_counters *k, double *user, double *kernel)
{
    *user = sum_counters(k, 0);
    *kernel = sum_counters(k, 1);
    for (int kind = 0; kind < 2; kind++)
        for (int i = 0; i < k->n; i++)
            if (k->fds[kind][i] >= 0)
                close(k->fds[kind][i]);
    k->n = 0;
}
