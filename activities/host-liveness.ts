import { readFileSync } from 'node:fs';
import { Etcd3 } from 'etcd3';
import { etcdClientOptions, hostHealthPrefix, type EtcdSettings } from '../domain/config.ts';

/** Reads which hosts hold a live lease-backed health key in etcd. */
export class HostLiveness {
  private readonly client: Etcd3;

  constructor(private readonly settings: EtcdSettings) {
    this.client = new Etcd3(etcdClientOptions(settings, readFileSync));
  }

  async onlineHostIds(): Promise<Set<string>> {
    const prefix = hostHealthPrefix(this.settings.prefix);
    const keys = await this.client.getAll().prefix(prefix).keys();
    return new Set(keys.map((k) => k.slice(prefix.length)));
  }

  /** One host's health key, read alone: what a single host's view needs, whatever the size of the fleet. */
  async isOnline(hostId: string): Promise<boolean> {
    return this.client.get(`${hostHealthPrefix(this.settings.prefix)}${hostId}`).exists();
  }

  close(): void {
    this.client.close();
  }
}
