<?php
// The PHP server's main: the contract's options, the signals, the listeners, the model's
// loop over connections or datagrams (Python: server/__init__.py).
declare(strict_types=1);

namespace AcceptLoop;

final class Server
{
    /** The models this port offers, by contract name (no threads: the PHP CLI has none). */
    private const MODELS = ['iterative', 'fork', 'event'];

    /**
     * Run one server until SIGTERM/SIGINT; return the exit code (Protocol::EXIT_*).
     *
     * @param list<string> $argv the arguments after the script's name
     */
    public static function main(array $argv): int
    {
        Os::installErrorHandler();
        $models = self::MODELS;
        try {
            $config = Args::parseArgs($argv, $models, getenv(Protocol::DAYTIME_EPOCH_ENV));
        } catch (UsageError $e) {
            Os::writeAll(STDERR, Args::usage($models) . Args::PROG . ': ' . $e->getMessage() . "\n");
            return Protocol::EXIT_USAGE;
        }
        if ($config === null) {
            Os::writeAll(STDOUT, Args::help($models));
            return Protocol::EXIT_OK;
        }
        if ($config->workers > 1) {
            return Workers::serveWorkers($config);
        }
        try {
            $control = new Control($config->grace);
            $control->installSignalHandlers(watchChildren: $config->model === 'fork');
            $listeners = new Listeners($config);
            $listeners->openListeners();
        } catch (SetupError $e) {
            return self::fail($e->getMessage());
        }
        $listeners->announce();
        try {
            self::run($listeners, $config, $control);
        } catch (\Throwable $e) {
            // One line, never a stack trace.
            return self::fail("{$config->model} loop: " . get_class($e) . ': ' . $e->getMessage());
        }
        $control->close();
        return Protocol::EXIT_OK;
    }

    /** The model's loop, over connections or (--transport udp, iterative or event) datagrams. */
    private static function run(Listeners $listeners, Config $config, Control $control): void
    {
        if ($config->transport === 'udp') {
            $datagrams = new DatagramLoop($listeners, $config, $control);
            match ($config->model) {
                'iterative' => $datagrams->runIterative(),
                'event' => $datagrams->runEvent(),
            };
            return;
        }
        match ($config->model) {
            'iterative' => (new IterativeModel($listeners, $config, $control))->runIterative(),
            'fork' => (new ForkModel($listeners, $config, $control))->runFork(),
            'event' => (new EventLoop($listeners, $config, $control))->runEvent(),
        };
    }

    /** Print one line on stderr and give the failure exit code. */
    public static function fail(string $message): int
    {
        Os::log($message);
        return Protocol::EXIT_FAILURE;
    }
}
