// Newest-first keyset paging over the API's lists: a page holds the rows whose id is below the
// cursor (`before_id`, from the previous page's `next_before_id`, which is null on the last page).

/**
 * One page, newest first: {items, next}. `cursor` is null for the latest page; `next` is the
 * cursor of the following (older) page, or null at the end.
 */
export async function fetchNewestFirst(api, path, { params = {}, cursor = null, limit = 50 }) {
  const query = { ...params, limit };
  if (cursor !== null) query.before_id = cursor;
  const page = await api.get(path, query);
  const items = [...(page?.items ?? [])].sort((a, b) => b.id - a.id);
  return { items, next: page?.next_before_id ?? page?.next_after_id ?? null };
}
