//! Token geometry in the raw (deta, dphi) plane (DESIGN.md section 3): farthest-point sampling
//! of centres, k-nearest-neighbour groups and the greedy sequencer. All distances are squared
//! Euclidean distances with the dphi difference wrapped (`kinematics::plane_dist2`); every tie
//! is broken towards the lower index so the result depends on nothing but the input.
use crate::kinematics::plane_dist2;

/// Farthest-point sampling: starts at particle 0 (the hardest) and repeatedly adds the particle
/// whose distance to its nearest chosen centre is largest, ties to the lowest index. Already
/// chosen particles are never chosen again, so centres are distinct even when particles sit on
/// top of each other. Returns at most `min(n_centres, points.len())` indices, in FPS order.
/// O(n · n_centres).
pub fn farthest_point_sampling(points: &[[f64; 2]], n_centres: usize) -> Vec<usize> {
    let n = points.len();
    let m = n_centres.min(n);
    let mut centres = Vec::with_capacity(m);
    if m == 0 {
        return centres;
    }
    // Distance to the nearest chosen centre; −1 marks chosen particles (real distances are ≥ 0).
    let mut min_d: Vec<f64> = points.iter().map(|&p| plane_dist2(p, points[0])).collect();
    centres.push(0);
    min_d[0] = -1.0;
    while centres.len() < m {
        let mut best = usize::MAX;
        let mut best_d = f64::NEG_INFINITY;
        for (i, &d) in min_d.iter().enumerate() {
            if d > best_d {
                best_d = d;
                best = i;
            }
        }
        if best == usize::MAX || best_d < 0.0 {
            break; // only reachable with NaN coordinates, which validation excludes
        }
        centres.push(best);
        min_d[best] = -1.0;
        let c = points[best];
        for (i, d) in min_d.iter_mut().enumerate() {
            if *d > 0.0 {
                let dc = plane_dist2(points[i], c);
                if dc < *d {
                    *d = dc;
                }
            }
        }
    }
    centres
}

/// The `k` nearest particles to `centre`, the centre itself first, then by increasing distance
/// with ties to the lower index. With fewer than `k` particles the sorted list is repeated
/// cyclically to fill `k` slots, so every group has exactly `k` members.
pub fn nearest_neighbours(points: &[[f64; 2]], centre: usize, k: usize) -> Vec<usize> {
    let mut scratch = Vec::with_capacity(points.len());
    let mut out = Vec::with_capacity(k);
    nearest_neighbours_into(points, centre, k, &mut scratch, &mut out);
    out
}

/// As [`nearest_neighbours`], reusing `scratch` and writing into `out` (cleared first).
pub(crate) fn nearest_neighbours_into(
    points: &[[f64; 2]],
    centre: usize,
    k: usize,
    scratch: &mut Vec<(f64, u32)>,
    out: &mut Vec<usize>,
) {
    out.clear();
    let n = points.len();
    if n == 0 || k == 0 || centre >= n {
        return;
    }
    let c = points[centre];
    scratch.clear();
    scratch.extend(points.iter().enumerate().map(|(i, &p)| {
        // The centre sorts first even if another particle sits at distance 0.
        let d = if i == centre { -1.0 } else { plane_dist2(p, c) };
        (d, i as u32)
    }));
    let by_distance = |a: &(f64, u32), b: &(f64, u32)| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1));
    let m = k.min(n);
    if m < n {
        scratch.select_nth_unstable_by(m - 1, by_distance);
        scratch.truncate(m);
    }
    // Keys are unique (the index breaks ties), so an unstable sort is deterministic.
    scratch.sort_unstable_by(by_distance);
    out.extend((0..k).map(|j| scratch[j % m].1 as usize));
}

/// Greedy sequencer: starting at FPS centre 0 (the hardest particle), repeatedly visits the
/// unvisited centre nearest to the last visited one, ties to the lower FPS index. Returns FPS
/// indices (positions in `centres`) in visiting order; each appears exactly once.
pub fn sequence(points: &[[f64; 2]], centres: &[usize]) -> Vec<usize> {
    let t = centres.len();
    let mut order = Vec::with_capacity(t);
    if t == 0 {
        return order;
    }
    let mut visited = vec![false; t];
    let mut last = 0;
    visited[0] = true;
    order.push(0);
    for _ in 1..t {
        let from = points[centres[last]];
        let mut best = usize::MAX;
        let mut best_d = f64::INFINITY;
        for (j, &c) in centres.iter().enumerate() {
            if visited[j] {
                continue;
            }
            let d = plane_dist2(points[c], from);
            if d < best_d || best == usize::MAX {
                best_d = d;
                best = j;
            }
        }
        visited[best] = true;
        order.push(best);
        last = best;
    }
    order
}
