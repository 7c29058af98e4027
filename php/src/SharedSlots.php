<?php
// --max-conns across the workers (Workers): one count in System V shared memory, taken and
// given back under a System V semaphore, so no two workers can both take the last slot
// (Python: server/workers.py SharedSlots; C: one atomic counter, the workers being threads).
//
// Both are private (IPC_PRIVATE), made by the parent before it forks. The memory is marked
// for removal at once and goes when the last worker lets go of it; the semaphore is removed
// by the parent once every worker has exited. A worker that dies holding the semaphore gives
// it back (sem_acquire uses SEM_UNDO).
declare(strict_types=1);

namespace AcceptLoop;

final class SharedSlots
{
    private const IPC_PRIVATE = 0;

    private readonly \Shmop $memory;
    private readonly \SysvSemaphore $lock;

    /** @throws SetupError `shmop workers: ...` or `semget workers: ...` */
    public function __construct(private readonly int $limit)
    {
        try {
            $this->memory = shmop_open(self::IPC_PRIVATE, 'c', 0600, 8);
        } catch (\ErrorException $e) {
            throw new SetupError('shmget', 'workers', 0, $e->getMessage());
        }
        shmop_delete($this->memory);
        shmop_write($this->memory, pack('q', 0), 0);
        try {
            $this->lock = sem_get(self::IPC_PRIVATE, 1, 0600, false);
        } catch (\ErrorException $e) {
            throw new SetupError('semget', 'workers', 0, $e->getMessage());
        }
    }

    /** Whether one more connection fits in the whole server; if so it is counted. */
    public function take(): bool
    {
        sem_acquire($this->lock);
        $held = $this->held();
        if ($held < $this->limit) {
            shmop_write($this->memory, pack('q', $held + 1), 0);
        }
        sem_release($this->lock);
        return $held < $this->limit;
    }

    /** A counted connection has ended. */
    public function give(): void
    {
        sem_acquire($this->lock);
        shmop_write($this->memory, pack('q', $this->held() - 1), 0);
        sem_release($this->lock);
    }

    /** The parent, once every worker has exited: the semaphore is not left behind. */
    public function remove(): void
    {
        sem_remove($this->lock);
    }

    private function held(): int
    {
        return unpack('q', shmop_read($this->memory, 0, 8))[1];
    }
}
