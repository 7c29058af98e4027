/* build/acceptloop-c: the C server as a standalone executable.
 *
 *     build/acceptloop-c --service echo --model event --host localhost --port 0
 *
 * It follows the contract exactly like `python -m acceptloop.server`: the
 * options come from the generated al_options table; bad arguments print usage
 * and one line and exit 2; a failing step prints one line and exits 1; SIGTERM
 * or SIGINT stop gracefully and exit 0. The stop comes through the core's
 * own handlers, al_server_stop_on_signals (signals.c on POSIX; a console
 * control handler in platform_winsock.c on Winsock), which Python never calls.
 * Built for Windows too (build/acceptloop-c.exe, issue 15).
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acceptloop.h"
#include "platform.h"
#include "protocol.h"
#include "server.h"
#include "workers.h"

/* The server main runs, or with --workers N > 1 its workers; the signal handlers (signals.c) stop them. */
static al_server *the_server;
static al_workers *the_workers;

/* What the command line gives: one server's settings, and how many workers run them. */
struct options {
    struct al_config cfg;
    int workers;
};

/* Which field of struct options each option fills: the field is named
 * like the option, with '_' for '-', so the names are written only once, in
 * protocol.toml, and a field missing for a new option is found at start-up. */
#define FIELD(name) { #name, offsetof(struct options, cfg.name) }
static const struct field {
    const char *name;
    size_t offset;
} fields[] = {
    FIELD(service), FIELD(model), FIELD(host), FIELD(port), FIELD(backlog),
    FIELD(grace), FIELD(max_conns), FIELD(idle_timeout), FIELD(ipv6_only), FIELD(transport),
    { "workers", offsetof(struct options, workers) },
};

static const struct field *field_for(const char *option)
{
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        const char *a = option, *b = fields[i].name;
        while (*a != '\0' && (*a == *b || (*a == '-' && *b == '_')))
            a++, b++;
        if (*a == '\0' && *b == '\0')
            return &fields[i];
    }
    return NULL;
}

/* The names a choice option offers, as the protocol definition lists them. */
static const char *const *choices_for(const struct al_option_spec *spec, int *count)
{
    *count = spec->choice_count;
    return spec->choices;
}

/* argparse's metavar: the option's name in capitals, '_' for '-'. */
static void metavar(const struct al_option_spec *spec, char *buf, size_t len)
{
    size_t i = 0;
    if (spec->kind == AL_OPT_CHOICE) {
        int count;
        const char *const *names = choices_for(spec, &count);
        i += (size_t)snprintf(buf, len, "{");
        for (int c = 0; c < count && i < len; c++)
            i += (size_t)snprintf(buf + i, len - i, "%s%s", c ? "," : "", names[c]);
        if (i < len)
            snprintf(buf + i, len - i, "}");
        return;
    }
    for (const char *p = spec->name; *p != '\0' && i + 1 < len; p++)
        buf[i++] = *p == '-' ? '_' : (char)(*p >= 'a' && *p <= 'z' ? *p - 'a' + 'A' : *p);
    buf[i] = '\0';
}

static void print_usage(FILE *out, const char *prog)
{
    char item[160], meta[128];
    int indent = (int)strlen("usage: ") + (int)strlen(prog) + 1;
    int column = fprintf(out, "usage: %s [-h]", prog);
    for (int i = 0; i < AL_OPTION_COUNT; i++) {
        const struct al_option_spec *spec = &al_options[i];
        metavar(spec, meta, sizeof meta);
        if (spec->kind == AL_OPT_FLAG)
            snprintf(item, sizeof item, "[--%s]", spec->name);
        else
            snprintf(item, sizeof item, "[--%s %s]", spec->name, meta);
        if (column + 1 + (int)strlen(item) > 80) {   /* wrapped as argparse wraps it */
            column = fprintf(out, "\n%*s%s", indent, "", item) - 1;
        } else {
            column += fprintf(out, " %s", item);
        }
    }
    fputc('\n', out);
}

static void print_help(const char *prog)
{
    char meta[128];
    print_usage(stdout, prog);
    printf("\nA TCP accept loop that follows the acceptloop contract.\n\noptions:\n");
    printf("  -h, --help            show this help message and exit\n");
    for (int i = 0; i < AL_OPTION_COUNT; i++) {
        const struct al_option_spec *spec = &al_options[i];
        metavar(spec, meta, sizeof meta);
        if (spec->kind == AL_OPT_FLAG)
            printf("  --%s\n", spec->name);
        else
            printf("  --%s %s\n", spec->name, meta);
        printf("                        %s", spec->help);
        if (spec->default_value != NULL)
            printf(" (default: %s)", spec->default_value);
        printf("\n");
    }
}

/* Usage and one line naming the problem on stderr; the caller exits 2. */
static int usage_error(const char *prog, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int usage_error(const char *prog, const char *fmt, ...)
{
    va_list ap;
    print_usage(stderr, prog);
    fprintf(stderr, "%s: ", prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return AL_EXIT_USAGE;
}

/* text as Python's repr() writes a str, so that a usage line is one line and reads the same in
 * every port: in single quotes (double quotes when it holds a ' and no "), with \\, \n, \r,
 * \t and \xHH for the other control bytes. Bytes from 0x80 up are passed on as they are (UTF-8
 * text prints as itself, as in Python). Truncated to fit buf. */
static const char *quoted(const char *text, char *buf, size_t len)
{
    char q = strchr(text, '\'') != NULL && strchr(text, '"') == NULL ? '"' : '\'';
    size_t n = 0;
    buf[n++] = q;
    for (const unsigned char *p = (const unsigned char *)text; *p != '\0' && n + 6 < len; p++) {
        const char *named = *p == '\\' ? "\\\\" : *p == '\n' ? "\\n" : *p == '\r' ? "\\r" : *p == '\t' ? "\\t" : NULL;
        if (named != NULL)
            n += (size_t)snprintf(buf + n, len - n, "%s", named);
        else if (*p == (unsigned char)q)
            n += (size_t)snprintf(buf + n, len - n, "\\%c", q);
        else if (*p < 0x20 || *p == 0x7f)
            n += (size_t)snprintf(buf + n, len - n, "\\x%02x", *p);
        else
            buf[n++] = (char)*p;
    }
    buf[n++] = q;
    buf[n] = '\0';
    return buf;
}

/* Whether text is written as the contract's grammar for a number of this kind says
 * (protocol.toml [grammar]): matched whole, before strtol/strtod see it, since they would
 * also take "0x10", " 5", "+5", "1e3", "inf" and "nan". */
static int grammatical(enum al_option_kind kind, const char *text)
{
    return al_grammar_match(kind == AL_OPT_INT ? AL_GRAMMAR_INT : AL_GRAMMAR_SECONDS, text);
}

/* Parses text as a number of the grammar's kind within low..high. Returns 0, or writes why not
 * to why ("not a number: '0x10'", "70000 is outside 0..65535") and returns -1. */
static int parse_number(enum al_option_kind kind, const char *text, double low, double high,
                        double *value, char *why, size_t whylen)
{
    if (!grammatical(kind, text)) {
        char shown[AL_ERROR_LEN / 2];
        snprintf(why, whylen, "%s: %s", kind == AL_OPT_INT ? "not a whole number" : "not a number",
                 quoted(text, shown, sizeof shown));
        return -1;
    }
    errno = 0;
    /* Digits only: strtod is exact enough for every int the contract allows (< 2^53). */
    *value = strtod(text, NULL);
    if (errno == ERANGE || !(low <= *value && *value <= high)) {
        snprintf(why, whylen, "%s is outside %.15g..%.15g", text, low, high);
        return -1;
    }
    return 0;
}

/* Stores one option's value in opts; 0, or the exit code after a usage error. */
static int store(const char *prog, const struct al_option_spec *spec, const char *text, struct options *opts)
{
    const struct field *field = field_for(spec->name);
    if (field == NULL) {
        fprintf(stderr, "%s: option --%s has no field in struct options\n", prog, spec->name);
        return AL_EXIT_FAILURE;
    }
    char *where = (char *)opts + field->offset;
    if (spec->kind == AL_OPT_FLAG) {
        *(int *)where = 1;
    } else if (spec->kind == AL_OPT_STRING) {
        if (spec->max > 0 && (double)strlen(text) > spec->max)
            return usage_error(prog, "argument --%s: longer than %.15g bytes", spec->name, spec->max);
        *(const char **)where = text;
    } else if (spec->kind == AL_OPT_CHOICE) {
        int count, found = AL_ERR;
        const char *const *names = choices_for(spec, &count);
        for (int c = 0; c < count; c++)
            if (strcmp(names[c], text) == 0)
                found = c;
        if (found == AL_ERR) {
            char list[256];
            size_t used = 0;
            for (int c = 0; c < count && used < sizeof list; c++)
                used += (size_t)snprintf(list + used, sizeof list - used, "%s'%s'", c ? ", " : "", names[c]);
            char shown[AL_ERROR_LEN / 2];
            return usage_error(prog, "argument --%s: invalid choice: %s (choose from %s)", spec->name,
                               quoted(text, shown, sizeof shown), list);
        }
        *(int *)where = found;
    } else {
        double value;
        char why[AL_ERROR_LEN];
        if (parse_number(spec->kind, text, spec->min, spec->max, &value, why, sizeof why) < 0)
            return usage_error(prog, "argument --%s: %s", spec->name, why);
        if (spec->kind == AL_OPT_INT)
            *(int *)where = (int)value;
        else
            *(double *)where = value;
    }
    return 0;
}

/* argparse takes "-1" as a value, not an option, since no option looks like a number. */
static int looks_like_value(const char *arg)
{
    return arg[0] != '-' || (arg[1] >= '0' && arg[1] <= '9') || (arg[1] == '.' && arg[2] >= '0' && arg[2] <= '9');
}

/* Parses the contract's options into cfg. Returns -1 to go on, or the exit
 * code: 0 after --help, AL_EXIT_USAGE after a bad argument. */
/* Appends " ARG" to the unknown arguments, reported together at the end, as argparse does. */
static void add_unknown(char *unknown, size_t size, size_t *used, const char *arg)
{
    *used += (size_t)snprintf(unknown + *used, size - *used, " %s", arg);
    if (*used >= size)
        *used = size - 1;
}

/* The option "--NAME" (name_len bytes of name) stands for, as argparse matches it: an exact
 * name, or a unique prefix; "help" is one too. Returns it, or NULL with *code: -1 for an
 * unknown option, or the exit code after --help or an ambiguous prefix. */
static const struct al_option_spec *match_option(const char *prog, const char *name, size_t name_len, int *code)
{
    const struct al_option_spec *spec = NULL;
    int matches = 0, help = strncmp("help", name, name_len) == 0;
    char candidates[256] = "";
    size_t used = help ? (size_t)snprintf(candidates, sizeof candidates, "--help") : 0;
    for (int o = 0; o < AL_OPTION_COUNT; o++) {
        const struct al_option_spec *s = &al_options[o];
        if (strlen(s->name) == name_len && strncmp(s->name, name, name_len) == 0)
            return s;   /* an exact name beats any prefix */
        if (strncmp(s->name, name, name_len) == 0) {   /* argparse accepts a unique prefix */
            spec = s, matches++;
            used += (size_t)snprintf(candidates + used, sizeof candidates - used, "%s--%s", used ? ", " : "", s->name);
            if (used >= sizeof candidates)
                used = sizeof candidates - 1;
        }
    }
    *code = -1;
    if (help && matches == 0) {
        print_help(prog);
        *code = AL_EXIT_OK;
        return NULL;
    }
    if (matches + help > 1) {
        *code = usage_error(prog, "ambiguous option: --%.*s could match %s", (int)name_len, name, candidates);
        return NULL;
    }
    return spec;
}

/* The daytime epoch from the environment, if set (tests pin the clock with it). */
static int read_epoch(const char *prog, struct al_config *cfg)
{
    const char *epoch = getenv(AL_DAYTIME_EPOCH_ENV);
    if (epoch == NULL || epoch[0] == '\0')
        return -1;
    double value;
    char why[AL_ERROR_LEN];
    if (parse_number(AL_OPT_INT, epoch, (double)AL_DAYTIME_EPOCH_MIN, (double)AL_DAYTIME_EPOCH_MAX, &value,
                     why, sizeof why) < 0)
        return usage_error(prog, "%s: %s", AL_DAYTIME_EPOCH_ENV, why);
    cfg->has_daytime_epoch = 1;
    cfg->daytime_epoch = strtoll(epoch, NULL, 10);   /* exact: digits only, and within range */
    return -1;
}

/* --transport udp only with a model and a service that have a datagram form (protocol.toml
 * [datagram]): -1 to go on, or the exit code after the usage line saying so. */
static int check_transport(const char *prog, const struct al_config *cfg)
{
    if (cfg->transport == AL_TRANSPORT_UDP && !AL_DATAGRAM_MODEL(cfg->model))
        return usage_error(prog, "%s", AL_DATAGRAM_WRONG_MODEL);
    if (cfg->transport == AL_TRANSPORT_UDP && !AL_DATAGRAM_SERVICE(cfg->service))
        return usage_error(prog, "%s", AL_DATAGRAM_NO_DATAGRAM_FORM);
    return -1;
}

/* --workers N > 1 only with a model that runs an event loop, and over tcp (protocol.toml
 * [workers]): -1 to go on, or the exit code after the usage line saying so. */
static int check_workers(const char *prog, const struct options *opts)
{
    if (opts->workers <= 1)
        return -1;
    for (int i = 0; i < AL_WORKER_MODEL_COUNT; i++)
        if (strcmp(al_worker_models[i], al_model_names[opts->cfg.model]) == 0)
            return opts->cfg.transport == AL_TRANSPORT_TCP ? -1 : usage_error(prog, "%s", AL_WORKERS_UDP_REFUSAL);
    return usage_error(prog, AL_WORKERS_REFUSAL, al_model_names[opts->cfg.model]);
}

/* What this build does not offer (Winsock: --workers N > 1, --transport udp), once the
 * contract's own refusals are passed, so that every port words those alike: -1 to go
 * on, or the exit code after the usage line (al_platform_refusal, platform.h). */
static int check_platform(const char *prog, const struct options *opts)
{
    const char *lacks = NULL;
    if (opts->workers > 1)
        lacks = al_platform_refusal(AL_LACKS_WORKERS);
    if (lacks == NULL && opts->cfg.transport == AL_TRANSPORT_UDP)
        lacks = al_platform_refusal(AL_LACKS_DATAGRAMS);
    return lacks != NULL ? usage_error(prog, "%s", lacks) : -1;
}

/* The contract's options into opts. Returns -1 to run, or the exit code: 0 after
 * --help, 2 after one usage line. */
static int parse_args(int argc, char **argv, struct options *opts)
{
    const char *prog = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
    char unknown[512] = "";
    size_t unknown_len = 0;
    al_config_defaults(&opts->cfg);
    opts->workers = AL_DEFAULT_WORKERS;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0') {
            if (strcmp(arg, "-h") == 0) {
                print_help(prog);
                return AL_EXIT_OK;
            }
            add_unknown(unknown, sizeof unknown, &unknown_len, arg);
            continue;
        }
        const char *name = arg + 2, *eq = strchr(name, '=');
        size_t name_len = eq != NULL ? (size_t)(eq - name) : strlen(name);
        int code = -1;
        const struct al_option_spec *spec = match_option(prog, name, name_len, &code);
        if (code >= 0)
            return code;
        if (spec == NULL) {
            add_unknown(unknown, sizeof unknown, &unknown_len, arg);
            continue;   /* a value after it is reported too, as an unknown argument of its own */
        }
        const char *value = eq != NULL ? eq + 1 : NULL;
        if (spec->kind == AL_OPT_FLAG && value != NULL) {
            char shown[AL_ERROR_LEN / 2];
            return usage_error(prog, "argument --%s: ignored explicit argument %s", spec->name,
                               quoted(value, shown, sizeof shown));
        }
        if (spec->kind != AL_OPT_FLAG && value == NULL) {
            if (i + 1 >= argc || !looks_like_value(argv[i + 1]))
                return usage_error(prog, "argument --%s: expected one argument", spec->name);
            value = argv[++i];
        }
        code = store(prog, spec, value, opts);
        if (code != 0)
            return code;
    }
    if (unknown_len > 0)
        return usage_error(prog, "unrecognized arguments:%s", unknown);
    int code = check_transport(prog, &opts->cfg);
    if (code < 0)
        code = check_workers(prog, opts);
    if (code < 0)
        code = read_epoch(prog, &opts->cfg);
    return code >= 0 ? code : check_platform(prog, opts);
}

/* SIGTERM and SIGINT stop every worker (al_signals_install, signals.c). */
static void stop_workers(void *w)
{
    al_workers_stop(w);
}

/* Prints the failure, one line on stderr, and gives the exit code for it (1). */
static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...)
{
    char line[AL_ERROR_LEN + 64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s\n", line);
    return AL_EXIT_FAILURE;
}

/* "TEXT (NAME)" for an errno or Winsock code, in a static buffer (main's thread only). */
static const char *describe(int code)
{
    static char text[128];
    al_error_text(text, sizeof text, code);
    return text;
}

/* What main runs: one server, or the workers; the same steps either way. */
struct runner {
    void *it;
    int (*open)(void *it, char *err, size_t errlen);
    al_server *(*first)(void *it);   /* whose listeners are announced */
    int (*run)(void *it, char *err, size_t errlen);
};

static int open_server(void *it, char *err, size_t errlen) { return al_server_open(it, err, errlen); }
static al_server *the_one(void *it) { return it; }
static int run_server(void *it, char *err, size_t errlen) { return al_server_run(it, err, errlen); }
static int open_workers(void *it, char *err, size_t errlen) { return al_workers_open(it, err, errlen); }
static al_server *first_worker(void *it) { return al_workers_first(it); }
static int run_workers(void *it, char *err, size_t errlen) { return al_workers_run(it, err, errlen); }

/* Opens, announces once every listener of every worker is open, runs; the exit code. */
static int open_announce_run(const struct runner *r, int model)
{
    char err[AL_ERROR_LEN];
    struct al_error announce_err;
    int count;
    const int *fds;
    if (r->open(r->it, err, sizeof err) != AL_OK)
        return fail("%s", err);
    fds = al_server_listeners(r->first(r->it), &count);
    if (al_announce(&announce_err, stdout, fds, count) != AL_OK)
        return fail("%s", announce_err.message);
    if (r->run(r->it, err, sizeof err) != AL_OK)
        return fail("%s loop: %s", al_model_names[model], err);
    return AL_EXIT_OK;
}

int main(int argc, char **argv)
{
    struct options opts;
    /* "\n", never "\r\n" (Windows' text mode); SIGPIPE ignored (POSIX): a write to a
     * reset peer must be an error, never the end of the server. */
    al_platform_stdio();
    int code = parse_args(argc, argv, &opts);
    if (code >= 0)
        return code;
    struct al_config cfg = opts.cfg;
    /* Nothing on POSIX; WSAStartup on Winsock. */
    int started = al_platform_start();
    if (started != 0)
        return fail("WSAStartup: %s", describe(started));
    struct runner r = { NULL, open_server, the_one, run_server };
    if (opts.workers > 1) {
        the_workers = al_workers_new(&cfg, opts.workers);
        r = (struct runner){ the_workers, open_workers, first_worker, run_workers };
    } else {
        r.it = the_server = al_server_new(&cfg);
    }
    if (r.it == NULL) {
        /* The arguments are checked already: what is left to fail is making the stop and
         * wake-up pipes (EMFILE at a low descriptor limit; socket pairs on Winsock) or memory. */
        code = fail("pipe control: %s", describe(errno));
        al_platform_end();
        return code;
    }
    /* SIGTERM and SIGINT (signals.c; SIGCHLD for fork), or console control events (Winsock). */
    if ((the_workers != NULL ? al_signals_install(stop_workers, NULL, the_workers)
                             : al_server_stop_on_signals(the_server)) != AL_OK) {
        code = fail("sigaction: %s", describe(errno));
    } else {
        code = open_announce_run(&r, cfg.model);
    }
    /* No handler may touch the server once it is freed: a late stop waits, unheard. */
    al_server_signals_release();
    al_server_free(the_server);
    al_workers_free(the_workers);
    al_platform_end();
    return code;
}
