/* The load generator's view of the server under test: its CPU time and its
 * resident memory, read from /proc at the edges of the measured window, so
 * that "server CPU per operation" covers exactly the operations counted.
 * A server's children count too (the fork model): live ones through
 * /proc/PID/task/TID/children, exited ones through the parent's cutime and
 * cstime once it has reaped them. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "loadgen.h"

/* Calls fn(pid, arg) for pid and each of its live children. */
static void each_in_tree(int pid, void (*fn)(int, void *), void *arg)
{
    char path[64];
    fn(pid, arg);
    snprintf(path, sizeof path, "/proc/%d/task", pid);
    DIR *tasks = opendir(path);
    if (tasks == NULL)
        return;
    struct dirent *t;
    while ((t = readdir(tasks)) != NULL) {
        if (t->d_name[0] == '.')
            continue;
        char children[320];
        snprintf(children, sizeof children, "/proc/%d/task/%s/children", pid, t->d_name);
        FILE *f = fopen(children, "r");
        if (f == NULL)
            continue;
        int child;
        while (fscanf(f, "%d", &child) == 1)
            fn(child, arg);
        fclose(f);
    }
    closedir(tasks);
}

struct sum {
    double value;
    int ok;
};

static void add_cpu(int pid, void *arg)
{
    struct sum *sum = arg;
    char path[64], buf[1024];
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
    sum->value += (double)(v[0] + v[1] + v[2] + v[3]) / (double)sysconf(_SC_CLK_TCK);
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
