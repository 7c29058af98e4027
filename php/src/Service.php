<?php
// What one service does with a connection (Python: connection.Service and SERVICES).
// The defaults are "do nothing"; each service overrides what its row of the design's table says.
declare(strict_types=1);

namespace AcceptLoop;

abstract class Service
{
    /** Protocol::SERVICES name => class: every service of the protocol definition has one. */
    private const CLASSES = [
        'echo' => EchoService::class,
        'discard' => DiscardService::class,
        'chargen' => ChargenService::class,
        'daytime' => DaytimeService::class,
        'message' => MessageService::class,
    ];

    final public function __construct(protected readonly Connection $conn, protected readonly Config $config)
    {
    }

    public static function create(Connection $conn, Config $config): self
    {
        assert(array_keys(self::CLASSES) === Protocol::SERVICES);
        $class = self::CLASSES[$config->service];
        return new $class($conn, $config);
    }

    /** The name the log uses. */
    abstract public function name(): string;

    /** It writes without being asked (chargen): the connection wants writability while serving. */
    public function produces(): bool
    {
        return false;
    }

    public function onOpen(float $now): void
    {
    }

    public function onData(string $data, float $now): void
    {
    }

    public function onEof(float $now): void
    {
        $this->conn->finish();
    }

    /** With nothing waiting to be sent: offer more (a service that produces()). */
    public function refill(float $now): void
    {
    }
}
