//! Operations: warm the cache up, clear parts of it, report its statistics and health.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};

use cache_core::Cache;

use crate::db::DbError;
use crate::domain::{ListQuery, SearchQuery, Sort};
use crate::http::bodies::{BODY_PREFIX, Bodies, Read};
use crate::repo::batch::MAX_BATCH;
use crate::repo::{Repo, tags};

/// How many loads warmup runs at once.
pub const WARMUP_CONCURRENCY: usize = 16;
/// Categories whose filters warmup loads (the largest).
pub const WARMUP_CATEGORIES: usize = 10;
/// The listing sorts warmup loads, most requested first.
pub const WARMUP_SORTS: [Sort; 4] = [
    Sort::Popular,
    Sort::PriceAsc,
    Sort::Newest,
    Sort::TopSelling,
];

/// How deep warmup goes: what traffic reads, most popular first.
///
/// Under a Zipf (s = 1) popularity over 100,000 products the 20,000 most popular carry about 87 %
/// of detail reads; listings are keyed as requests key them (`category`, `sort`, `page`), for
/// every category (which categories are popular is not in the database), the first five pages of
/// each common sort (all of a sort's pages are read by one query, so depth costs little: a page
/// is one more body); search terms and autocomplete prefixes come from the names of the most
/// popular products (their first one or two words; two to four first letters of their words), as
/// users type them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WarmupDepth {
    /// Most popular products whose detail is loaded.
    pub products: usize,
    /// Most popular products whose recommendations are loaded.
    pub recommendations: usize,
    /// First listing pages of every category in each of [`WARMUP_SORTS`], in their order (read by
    /// one query for each category and sort).
    pub listing_pages: [u32; WARMUP_SORTS.len()],
    /// Categories whose listings are loaded: those with products, the largest first (a
    /// catalog of a few hundred categories has them all).
    pub listing_categories: usize,
    /// Most popular products whose names give the search terms and prefixes.
    pub names: usize,
    /// Search terms loaded (first pages), most frequent among the names first.
    pub search_terms: usize,
    /// Autocomplete prefixes loaded, most frequent first.
    pub prefixes: usize,
}

impl Default for WarmupDepth {
    fn default() -> Self {
        WarmupDepth {
            products: 20_000,
            recommendations: 1_000,
            listing_pages: [5, 5, 5, 5],
            listing_categories: 1_000,
            names: 5_000,
            search_terms: 1_000,
            prefixes: 1_500,
        }
    }
}

/// The kinds of entry that every page shows (the critical data of the plan the catalog follows:
/// categories, colours, rankings, statistics, filters of the main categories), warmed first and
/// timed apart ([`WarmupReport::critical`]).
pub const CRITICAL: [&str; 5] = ["categories", "colors", "rankings", "stats", "filters"];

/// What warmup did.
#[derive(Debug, Clone, Default)]
pub struct WarmupReport {
    pub elapsed: Duration,
    /// When the last entry of the [`CRITICAL`] kinds was warm (they are warmed first).
    pub critical: Duration,
    /// Entries warmed (loaded or found cached), per kind.
    pub loaded: BTreeMap<&'static str, usize>,
    /// Loads from the database while warming (the cache's counter of loader calls: a batch of
    /// products is one; a warmed entry may read another, e.g. a listing its category).
    pub from_database: u64,
    /// Reads the cache answered while warming (Redis, or this process's L1): entries that were
    /// already cached.
    pub already_cached: u64,
    pub failed: usize,
}

impl std::fmt::Display for WarmupReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let total: usize = self.loaded.values().sum();
        write!(
            f,
            "warmed {total} entries in {:.2?}: {} loads from the database, {} reads found cached",
            self.elapsed, self.from_database, self.already_cached
        )?;
        let parts: Vec<String> = self
            .loaded
            .iter()
            .map(|(k, n)| format!("{k}: {n}"))
            .collect();
        write!(f, " ({})", parts.join(", "))?;
        write!(
            f,
            "; what every page shows ({}) warm after {:.2?}",
            CRITICAL.join(", "),
            self.critical
        )?;
        if self.failed > 0 {
            write!(f, "; {} failed", self.failed)?;
        }
        Ok(())
    }
}

/// One warmup load: what it loads, its result and how long it took.
type Job<'a> = Pin<Box<dyn Future<Output = Loaded> + Send + 'a>>;
/// What one job warmed: its kind, what it was, how many entries (or its error), how long it took.
type Loaded = (&'static str, String, Result<usize, DbError>, Duration);

/// The cache's counters warmup reports, read before and after it.
struct Loads {
    /// Loads of the repository's values (database reads), not of the bodies serialised from them.
    database: u64,
    /// Reads that found an entry (a warmed body is one read: its value is not read again).
    cached: u64,
}

impl Loads {
    fn of(cache: &Cache) -> Loads {
        let mut loads = Loads {
            database: 0,
            cached: 0,
        };
        for p in cache.stats().patterns {
            let c = &p.counters;
            if !p.pattern.starts_with(BODY_PREFIX) {
                loads.database += c.loads;
            }
            loads.cached += c.l1_hits + c.l2_hits;
        }
        loads
    }
}

/// Search terms and autocomplete prefixes from product names, most popular name first: a name's
/// first word and first two words (lowercased) are terms, two to four first letters of each of
/// its alphabetic words are prefixes. Each in the order of the first (most popular) name that
/// gives it, without duplicates: what users of popular products type.
pub fn terms_and_prefixes(names: &[String]) -> (Vec<String>, Vec<String>) {
    let (mut terms, mut prefixes) = (Vec::new(), Vec::new());
    let mut seen = std::collections::HashSet::new();
    for name in names {
        let words: Vec<String> = name.split_whitespace().map(str::to_lowercase).collect();
        let mut candidates: Vec<(bool, String)> = Vec::new();
        if let Some(w) = words.first() {
            candidates.push((true, w.clone()));
        }
        if words.len() >= 2 {
            candidates.push((true, format!("{} {}", words[0], words[1])));
        }
        for w in words.iter().filter(|w| w.chars().all(char::is_alphabetic)) {
            let ends = w.char_indices().map(|(i, _)| i).chain([w.len()]);
            for end in ends.skip(2).take(3) {
                candidates.push((false, w[..end].to_owned()));
            }
        }
        for (is_term, text) in candidates {
            if seen.insert((is_term, text.clone())) {
                if is_term { &mut terms } else { &mut prefixes }.push(text);
            }
        }
    }
    (terms, prefixes)
}

/// Fills the cache with what most requests read: categories (all, tree, each, children of the
/// roots), colours, rankings, statistics, filters of the largest categories, the first listing
/// pages of every category in the common sorts (keyed as requests key them, with `page`), popular
/// search terms and autocomplete prefixes, the most popular products and their recommendations
/// ([`WarmupDepth`]). What a route answers with a cached body ([`Bodies`]) is warmed as that body,
/// through the route's own key and loader, so that a warmed request is one hit (a value warmed
/// without its body would still cost the request a body miss and a serialisation).
/// Concurrent, at most [`WARMUP_CONCURRENCY`] loads at once. The report says how many entries
/// were loaded from the database and how many were already cached.
pub async fn warmup(repo: &Repo, verbose: bool, progress: bool) -> Result<WarmupReport, DbError> {
    warmup_to(repo, WarmupDepth::default(), verbose, progress).await
}

/// [`warmup`] to the given depth.
pub async fn warmup_to(
    repo: &Repo,
    depth: WarmupDepth,
    verbose: bool,
    progress: bool,
) -> Result<WarmupReport, DbError> {
    let started = Instant::now();
    let categories = repo.categories().await?;
    let mut listed = repo
        .largest_categories(depth.listing_categories.max(WARMUP_CATEGORIES))
        .await?;
    let largest: Vec<i64> = listed.iter().copied().take(WARMUP_CATEGORIES).collect();
    listed.truncate(depth.listing_categories);
    let popular = repo.popular_names(depth.products.max(depth.names)).await?;
    let names: Vec<String> = popular
        .iter()
        .take(depth.names)
        .map(|(_, n)| n.clone())
        .collect();
    let (terms, prefixes) = terms_and_prefixes(&names);
    let cache = &repo.cache;
    // The routes' body patterns (registering the same patterns again is a no-op); `max-age` plays
    // no part in warming.
    let bodies = &Bodies::register(cache, Duration::ZERO)
        .map_err(|e| DbError::Internal(format!("registering the body patterns: {e}")))?;
    let before = Loads::of(cache);
    // Database reads that no repository pattern counts (several listing pages read at once).
    let listing_reads = &AtomicU64::new(0);

    let mut jobs: Vec<Job<'_>> = Vec::new();
    /// A job warming one entry.
    fn job<'a, T, F>(kind: &'static str, what: String, f: F) -> Job<'a>
    where
        F: Future<Output = Result<T, DbError>> + Send + 'a,
    {
        batch(kind, what, 1, f)
    }
    /// A job warming `entries` entries at once.
    fn batch<'a, T, F>(kind: &'static str, what: String, entries: usize, f: F) -> Job<'a>
    where
        F: Future<Output = Result<T, DbError>> + Send + 'a,
    {
        Box::pin(async move {
            let t = Instant::now();
            let result = f.await.map(|_| entries);
            (kind, what, result, t.elapsed())
        })
    }
    // What a route answers with a cached body is warmed through the body (`bodies.warm`: the
    // route's own key and loader), which reads, and so warms, the repository's value behind it.
    jobs.push(job("categories", "all categories".into(), async {
        bodies
            .warm(cache, Read::Categories, || async {
                repo.categories().await.map(Some)
            })
            .await
    }));
    jobs.push(job("categories", "category tree".into(), async {
        bodies
            .warm(cache, Read::CategoryTree, || async {
                repo.category_tree().await.map(Some)
            })
            .await
    }));
    for c in &categories {
        jobs.push(job(
            "categories",
            format!("category {}", c.id),
            repo.category(c.id),
        ));
        if c.parent_id.is_none() {
            jobs.push(job(
                "categories",
                format!("children of {}", c.id),
                repo.children(c.id),
            ));
        }
    }
    jobs.push(job("colors", "colours".into(), repo.colours()));
    jobs.push(job("rankings", "top sellers".into(), repo.top_sellers()));
    jobs.push(job("rankings", "new arrivals".into(), repo.new_arrivals()));
    jobs.push(job("rankings", "most popular".into(), repo.most_popular()));
    jobs.push(job("stats", "statistics".into(), repo.stats()));
    jobs.push(job(
        "filters",
        "filters of the catalog".into(),
        repo.filters(0),
    ));
    for &c in &largest {
        jobs.push(job(
            "filters",
            format!("filters of category {c}"),
            repo.filters(c),
        ));
    }
    // Most popular first, so that what is read most is warm first; in batches (one Redis round
    // trip and one database query for each).
    let products: Vec<i64> = popular.iter().take(depth.products).map(|p| p.0).collect();
    for ids in products.chunks(MAX_BATCH).map(<[i64]>::to_vec) {
        let what = format!("{} products from {}", ids.len(), ids[0]);
        jobs.push(batch("products", what, ids.len(), async move {
            let ids = &ids;
            let reads: Vec<Read<'_>> = ids.iter().map(|&id| Read::Product(id)).collect();
            bodies
                .warm_many(cache, &reads, |missing| async move {
                    let wanted: Vec<i64> = missing.iter().map(|&i| ids[i]).collect();
                    repo.products_by_ids(&wanted).await
                })
                .await
        }));
    }
    for (id, _) in popular.iter().take(depth.recommendations) {
        let id = *id;
        jobs.push(job(
            "recommendations",
            format!("recommendations of product {id}"),
            async move {
                bodies
                    .warm(cache, Read::Recommendations(id), || {
                        repo.recommendations(id)
                    })
                    .await
            },
        ));
    }
    // The pages of one (category, sort) by one query (a batch: the bodies still missing after one
    // Redis round trip, all of them read and cut into pages at once).
    for (sort, pages) in WARMUP_SORTS.iter().copied().zip(depth.listing_pages) {
        if pages == 0 {
            continue;
        }
        for &c in &listed {
            // Keyed as requests `?category=C&sort=S&page=P` key them: canonical, as the route
            // keys them (`page=1` is the same as no page).
            let queries: Vec<ListQuery> = (1..=pages)
                .map(|page| {
                    ListQuery {
                        category: Some(c),
                        sort,
                        page: Some(page),
                        ..ListQuery::default()
                    }
                    .canonical()
                })
                .collect();
            let what = format!("listing of category {c} by {sort:?}, pages 1 to {pages}");
            jobs.push(batch("listings", what, queries.len(), async move {
                let queries = &queries;
                let reads: Vec<Read<'_>> = queries.iter().map(|q| Read::Listing(c, q)).collect();
                bodies
                    .warm_many(cache, &reads, |missing| async move {
                        listing_reads.fetch_add(1, Ordering::Relaxed);
                        let read = repo.listing_pages(&queries[0], pages).await?;
                        let mut read: Vec<Option<_>> = read.into_iter().map(Some).collect();
                        Ok(missing.iter().map(|&i| read[i].take()).collect())
                    })
                    .await
            }));
        }
    }
    for q in terms.into_iter().take(depth.search_terms) {
        let what = format!("search `{q}`");
        let query = SearchQuery {
            q,
            ..SearchQuery::default()
        }
        .canonical();
        jobs.push(job("search", what, async move {
            bodies
                .warm(cache, Read::Search(&query), || async {
                    repo.search(&query).await.map(Some)
                })
                .await
        }));
    }
    for prefix in prefixes.into_iter().take(depth.prefixes) {
        let what = format!("autocomplete `{prefix}`");
        jobs.push(job("autocomplete", what, async move {
            bodies
                .warm(cache, Read::Autocomplete(&prefix), || async {
                    repo.autocomplete(&prefix).await.map(Some)
                })
                .await
        }));
    }

    let bar = if progress {
        let bar = ProgressBar::new(jobs.len() as u64);
        bar.set_style(
            ProgressStyle::with_template("warming up {bar:40} {pos}/{len} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let mut report = WarmupReport::default();
    let mut results = futures::stream::iter(jobs).buffer_unordered(WARMUP_CONCURRENCY);
    while let Some((kind, what, result, took)) = results.next().await {
        if CRITICAL.contains(&kind) {
            report.critical = started.elapsed();
        }
        match result {
            Ok(entries) => {
                *report.loaded.entry(kind).or_default() += entries;
                if verbose {
                    bar.suspend(|| println!("  warmed {what} ({took:.1?})"));
                }
            }
            Err(e) => {
                report.failed += 1;
                bar.suspend(|| eprintln!("  FAILED {what}: {e}"));
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let after = Loads::of(cache);
    report.from_database = after.database - before.database + listing_reads.load(Ordering::Relaxed);
    report.already_cached = after.cached - before.cached;
    report.elapsed = started.elapsed();
    Ok(report)
}

/// What `catalog clear` clears.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClearScope {
    All,
    Products,
    Categories,
    Colours,
    Product(i64),
    /// Every key matching a Redis glob (without the namespace).
    Pattern(String),
}

/// Clears part of the cache; returns a sentence saying what.
pub async fn clear(repo: &Repo, scope: ClearScope) -> Result<String, DbError> {
    match scope {
        ClearScope::Product(id) => Ok(if repo.evict_product(id).await? {
            format!("cleared product {id} (detail, by SKU, variants, recommendations)")
        } else {
            format!("product {id} does not exist; cleared its id-keyed entries")
        }),
        _ => Ok(clear_cache(&repo.cache, scope).await),
    }
}

/// Clears part of the cache without a database: every scope but [`ClearScope::Product`] (whose
/// SKU entry needs the database), which this refuses.
pub async fn clear_cache(cache: &Cache, scope: ClearScope) -> String {
    match scope {
        ClearScope::All => {
            cache.clear().await;
            format!(
                "cleared the whole namespace `{}` (running servers drop their copies at once)",
                cache.namespace()
            )
        }
        ClearScope::Products => {
            cache.invalidate_tag(tags::PRODUCTS).await;
            "cleared every product entry (tag `products`)".to_owned()
        }
        ClearScope::Categories => {
            cache.invalidate_tag(tags::CATEGORIES).await;
            "cleared every category entry (tag `categories`)".to_owned()
        }
        ClearScope::Colours => {
            cache.invalidate_tag(tags::COLORS).await;
            "cleared the colours (tag `colors`)".to_owned()
        }
        ClearScope::Pattern(glob) => {
            cache.invalidate_pattern(&glob).await;
            format!("cleared every key matching `{glob}`")
        }
        ClearScope::Product(id) => {
            format!("nothing cleared: clearing product {id} needs the database (its SKU)")
        }
    }
}

/// How many keys a second `clear --all` scans to free the cleared entries' memory: well below
/// what Redis serves, so that the servers' traffic does not notice.
pub const RECLAIM_KEYS_PER_SECOND: u32 = 20_000;

/// After `clear --all`: deletes the cleared entries from Redis (they are stale already; this
/// returns their memory before their TTLs would), rate-limited, and says how much it freed.
pub async fn reclaim_cleared(cache: &Cache) -> String {
    match cache.reclaim_cleared(RECLAIM_KEYS_PER_SECOND).await {
        Ok(r) => format!(
            "freed {} cleared entries ({:.1} KiB by MEMORY USAGE) of {} scanned",
            r.deleted,
            r.bytes as f64 / 1024.0,
            r.scanned
        ),
        Err(e) => format!("the cleared entries stay in Redis until their TTLs end: {e}"),
    }
}

/// Why `catalog clear` cannot act, if it cannot: no Redis configured (each server's L1 lives in
/// its own process, out of this command's reach) or Redis unreachable.
pub async fn clear_unavailable(cache: &Cache) -> Option<String> {
    if !cache.has_l2() {
        return Some(
            "nothing cleared: no REDIS_URL is configured, so there is no shared cache to clear. \
             Each server's L1 lives in its own process: restart a server to empty it, or set \
             REDIS_URL (--redis-url) to the Redis the servers share."
                .to_owned(),
        );
    }
    let health = cache.health().await;
    if health.l2.status == cache_core::L2Status::Down {
        return Some(format!(
            "nothing cleared: Redis is unreachable ({})",
            health.l2.error.unwrap_or_else(|| "no answer".to_owned())
        ));
    }
    None
}

/// How long the credentials check waits for Redis (to connect, then for each answer).
const CREDENTIALS_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Whether Redis at `url` refuses its credentials (a wrong password, an unknown or disabled user,
/// or no password where one is required): the reason, naming the user and the redacted URL, never
/// the password. `None` if it accepts them, and also if it cannot be reached or the URL does not
/// parse (the cache reports those itself).
pub async fn redis_credentials_refused(url: &str) -> Option<String> {
    let client = redis::Client::open(url).ok()?;
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CREDENTIALS_CHECK_TIMEOUT))
        .set_response_timeout(Some(CREDENTIALS_CHECK_TIMEOUT));
    let refused = match client
        .get_multiplexed_async_connection_with_config(&config)
        .await
    {
        Err(e) => e.kind() == redis::ErrorKind::AuthenticationFailed,
        // Connected without sending credentials (the URL has none): a server that requires
        // them answers NOAUTH to the first command.
        Ok(mut conn) => match redis::cmd("PING").query_async::<String>(&mut conn).await {
            Ok(_) => false,
            Err(e) => {
                e.kind() == redis::ErrorKind::AuthenticationFailed
                    || matches!(e.code(), Some("NOAUTH" | "WRONGPASS"))
            }
        },
    };
    refused.then(|| {
        format!(
            "Redis at {} refused the credentials of user `{}` (wrong password, unknown or \
             disabled user, or a password required and none given)",
            crate::config::redact_url(url),
            crate::config::redis_user(url)
        )
    })
}

/// One row of the statistics table: L1 hits, L2 hits, misses, loads, load time (ms).
type Row = [f64; 5];

fn table(rows: &BTreeMap<String, Row>) -> String {
    let mut out = format!(
        "{:<32} {:>8} {:>8} {:>8} {:>8} {:>10} {:>7}\n",
        "pattern", "l1 hits", "l2 hits", "misses", "loads", "load ms", "hit %"
    );
    let mut total = [0.0; 5];
    for (pattern, r) in rows {
        for (t, v) in total.iter_mut().zip(r) {
            *t += v;
        }
        out.push_str(&row(pattern, r));
    }
    out.push_str(&row("total", &total));
    out
}

fn row(name: &str, r: &Row) -> String {
    let lookups = r[0] + r[1] + r[2];
    let ratio = if lookups > 0.0 {
        (r[0] + r[1]) / lookups * 100.0
    } else {
        0.0
    };
    format!(
        "{name:<32} {:>8} {:>8} {:>8} {:>8} {:>10.1} {ratio:>7.1}\n",
        r[0], r[1], r[2], r[3], r[4]
    )
}

/// Cache statistics per pattern (of this process's cache) and the health report, as text.
pub async fn stats_text(repo: &Repo) -> String {
    let stats = repo.cache.stats();
    let rows: BTreeMap<String, Row> = stats
        .patterns
        .iter()
        .map(|p| {
            let c = &p.counters;
            let r = [c.l1_hits, c.l2_hits, c.misses, c.loads].map(|v| v as f64);
            (
                p.pattern.clone(),
                [r[0], r[1], r[2], r[3], c.load_time.as_secs_f64() * 1000.0],
            )
        })
        .collect();
    let mut out = table(&rows);
    out.push_str(&format!(
        "L1: {} entries, {} of {} bytes\n",
        stats.l1_entries, stats.l1_weighted_bytes, stats.l1_capacity_bytes
    ));
    let health = crate::http::routes::health_report(repo).await;
    out.push_str(&serde_json::to_string_pretty(&health).unwrap_or_default());
    out.push('\n');
    out
}

/// The statistics `catalog stats` prints without `--server`: the shared cache's (Redis: entries
/// of this namespace, memory, hits and misses of its keyspace, evictions) and the database's
/// (products, categories). This process serves nothing, so its own cache counters would all be
/// zero: without Redis it refuses, pointing at `--server`.
pub async fn shared_stats_text(repo: &Repo, redis_url: Option<&str>) -> anyhow::Result<String> {
    let Some(url) = redis_url.filter(|_| repo.cache.has_l2()) else {
        anyhow::bail!(
            "no REDIS_URL: there is no shared cache to report on, and this command serves              nothing, so it has no statistics of its own. Pass --server ADDR to read a running              server's, or set REDIS_URL (--redis-url) to the Redis the servers share."
        );
    };
    let redis = crate::redis_info::RedisInfo::read(url, Some(repo.cache.namespace())).await?;
    let db = repo.stats().await?;
    let health = crate::http::routes::health_report(repo).await;
    Ok(format!(
        "shared cache (Redis at {}, namespace `{}`)\n{}\n\
         database: {} products ({} variants), {} categories\n{}\n",
        crate::config::redact_url(url),
        repo.cache.namespace(),
        redis.text(),
        db.products.products,
        db.products.variants,
        db.categories.categories,
        serde_json::to_string_pretty(&health).unwrap_or_default()
    ))
}

/// The statistics of a running server (from its `/metrics` and `/health`), as text.
pub async fn server_stats_text(addr: &str) -> anyhow::Result<String> {
    let metrics = http_get(addr, "/metrics").await?;
    let mut rows: BTreeMap<String, Row> = BTreeMap::new();
    for line in metrics.lines() {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let Some(pattern) = label_value(series, "pattern") else {
            continue;
        };
        let column = match series.split('{').next() {
            Some("catalog_cache_hits_total") if label_value(series, "tier") == Some("l1") => 0,
            Some("catalog_cache_hits_total") => 1,
            Some("catalog_cache_misses_total") => 2,
            Some("catalog_cache_loads_total") => 3,
            Some("catalog_cache_load_seconds_sum") => {
                rows.entry(pattern.to_owned()).or_default()[4] = value * 1000.0;
                continue;
            }
            _ => continue,
        };
        rows.entry(pattern.to_owned()).or_default()[column] = value;
    }
    let mut out = format!("server {addr}\n");
    out.push_str(&table(&rows));
    out.push_str(&http_get(addr, "/health").await?);
    out.push('\n');
    Ok(out)
}

fn label_value<'a>(series: &'a str, name: &str) -> Option<&'a str> {
    let start = series.find(&format!("{name}=\""))? + name.len() + 2;
    let len = series[start..].find('"')?;
    Some(&series[start..start + len])
}

/// A plain HTTP/1.0 GET of a local server: the body.
async fn http_get(addr: &str, path: &str) -> anyhow::Result<String> {
    let (addr, path) = (addr.to_owned(), path.to_owned());
    tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(&addr)
            .map_err(|e| anyhow::anyhow!("cannot connect to the server at {addr}: {e}"))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        let (head, body) = response
            .split_once("\r\n\r\n")
            .ok_or_else(|| anyhow::anyhow!("malformed HTTP response from {addr}"))?;
        anyhow::ensure!(
            head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
            "GET {path}: {}",
            head.lines().next().unwrap_or("")
        );
        Ok(body.to_owned())
    })
    .await?
}
