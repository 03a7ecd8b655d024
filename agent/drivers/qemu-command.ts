import type { DiskSpec, GuestSpec } from '../../domain/agent-contract.ts';
import { tlsServerObject } from './qemu-tls.ts';

export type CacheMode = DiskSpec['cache'];

export interface QemuDisk {
  id: string;
  path: string;
  /** The cache mode QEMU gets, after the O_DIRECT fallback (see disk-images.ts). */
  cache: CacheMode;
}

export interface QemuLaunch {
  spec: GuestSpec;
  kernelPath: string;
  initrdPath: string;
  serialLogPath: string;
  qmpSocketPath: string;
  /**
   * The host end of the guest agent's virtio-serial channel (org.qemu.guest_agent.0): a unix socket
   * QEMU listens on, as libvirt sets it up for qemu-ga. Absent: no channel (a command line of an
   * older agent, whose guests then migrate only to QEMUs without it).
   */
  guestAgentSocketPath?: string | null;
  pidFilePath: string;
  disks: QemuDisk[];
  /** Destination of a migration: start paused, waiting for migrate-incoming. */
  incoming: boolean;
  /** Destination of a TLS migration: the certificate dir of its server credentials. */
  tlsServerDir?: string | null;
}

/** The test guest reads its workload from the kernel command line (agent/guest-image/dirtier.c). */
export function kernelCommandLine(spec: GuestSpec): string {
  const line = `console=ttyS0 quiet dirty_mibs=${spec.dirtyRateMibs} fill_mb=${spec.fillMb}`;
  return spec.diskTest ? `${line} disk_test=1` : line;
}

/**
 * QEMU's seccomp filter: a guest's QEMU may not run programs (the exec: migration transport, helper
 * scripts), gain privileges, change scheduling or use obsolete system calls. QEMU needs none of them
 * for TCG/KVM, QMP, migration over TCP (TLS included), NBD or user-mode networking.
 */
export const QEMU_SANDBOX = 'on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny';

/**
 * The QEMU command line of a guest. Source and destination of a migration must build the same one
 * (machine, memory, devices and their ids, MACs): only -incoming differs.
 */
export function qemuArguments(launch: QemuLaunch): string[] {
  const { spec } = launch;
  // prettier-ignore
  const args = [
    '-name', `guest=${spec.name.replace(/,/g, ',,')},debug-threads=on`,
    '-machine', 'q35',
    '-accel', 'tcg',
    '-nographic',
    '-nodefaults',
    '-sandbox', QEMU_SANDBOX,
    '-m', String(spec.memoryMb),
    '-smp', String(spec.vcpus),
    '-kernel', launch.kernelPath,
    '-initrd', launch.initrdPath,
    '-append', kernelCommandLine(spec),
    '-serial', `file:${launch.serialLogPath}`,
    '-qmp', `unix:${launch.qmpSocketPath},server=on,wait=off`,
    '-pidfile', launch.pidFilePath,
  ];
  for (const disk of launch.disks) {
    // prettier-ignore
    args.push(
      '-drive', `file=${disk.path.replace(/,/g, ',,')},format=qcow2,if=none,id=drive-${disk.id},cache=${disk.cache}`,
      '-device', `virtio-blk-pci,drive=drive-${disk.id},id=disk-${disk.id}`,
    );
  }
  spec.networks.forEach((network, index) => {
    // The backend is host-local (user-mode, no access to the host); what migration needs is that the
    // NIC model and MAC match on both ends.
    // prettier-ignore
    args.push(
      '-netdev', `user,id=net${index},restrict=on`,
      '-device', `virtio-net-pci,netdev=net${index},mac=${network.mac.toLowerCase()},id=nic${index}`,
    );
  });
  if (launch.guestAgentSocketPath) args.push(...guestAgentChannelArguments(launch.guestAgentSocketPath));
  if (launch.incoming) args.push('-incoming', 'defer');
  if (launch.incoming && launch.tlsServerDir) args.push('-object', tlsServerObject(launch.tlsServerDir));
  return args;
}

/** The virtio-serial port name qemu-ga (and the test guest's agent/guest-image/qga.c) opens. */
export const GUEST_AGENT_CHANNEL = 'org.qemu.guest_agent.0';

/**
 * A virtio-serial bus with the guest agent's port on it, backed by a unix socket QEMU serves (one
 * client at a time; wait=off: QEMU starts without one). Part of the guest's device layout, so source
 * and destination of a migration must both have it.
 */
export function guestAgentChannelArguments(socketPath: string): string[] {
  // prettier-ignore
  return [
    '-chardev', `socket,id=qga0,path=${socketPath.replace(/,/g, ',,')},server=on,wait=off`,
    '-device', 'virtio-serial-pci,id=virtio-serial0',
    '-device', `virtserialport,bus=virtio-serial0.0,nr=1,chardev=qga0,id=channel0,name=${GUEST_AGENT_CHANNEL}`,
  ];
}
