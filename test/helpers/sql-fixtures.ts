/** SQL for a cluster and one sim host in it, for tests that write rows straight into a fresh database. */
export function oneHostSql(hostId: string): string {
  return `
  insert into clusters (id, name) values ('00000000-0000-0000-0000-00000000000c', 'c');
  insert into hosts (id, cluster_id, name, address, agent_url, driver, cpu_model, microcode, kernel, qemu_version,
    cpus, memory_mb, shared_storage_path)
  values ('${hostId}', '00000000-0000-0000-0000-00000000000c', 'h', '127.0.0.1', 'http://127.0.0.1:1', 'sim', 'cpu',
    '0x1', '6.1', '8.0', 4, 4096, '/tmp');
`;
}
