import type { QemuLaunch } from '../../agent/drivers/qemu-command.ts';
import type { GuestSpec } from '../../domain/agent-contract.ts';

/**
 * The launch of `spec`'s QEMU with fixed test paths (kernel and initrd under /img, the guest's files
 * under /a), no disks, as a migration source; `overrides` replaces any of it.
 */
export function testQemuLaunch(spec: GuestSpec, overrides: Partial<QemuLaunch> = {}): QemuLaunch {
  return {
    spec,
    kernelPath: '/img/vmlinuz',
    initrdPath: '/img/initramfs.cpio.gz',
    serialLogPath: '/a/serial.log',
    qmpSocketPath: '/a/qmp.sock',
    pidFilePath: '/a/qemu.pid',
    disks: [],
    incoming: false,
    ...overrides,
  };
}
