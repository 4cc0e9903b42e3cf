export async function memorySections(_: { quick: boolean }): Promise<string[]> {
  return [];
}
