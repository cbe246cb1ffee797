/** A value installed per TF.js backend (the fused optimizer updates), removable by its installer. */
export function perBackend<T>(): {
  /** Installs `value` for `backendName`; returns how to remove it again (if still installed). */
  install(backendName: string, value: T): () => void;
  get(backendName: string): T | undefined;
} {
  const installed = new Map<string, T>();
  return {
    install(backendName, value) {
      installed.set(backendName, value);
      return () => {
        if (installed.get(backendName) === value) installed.delete(backendName);
      };
    },
    get: (backendName) => installed.get(backendName),
  };
}
