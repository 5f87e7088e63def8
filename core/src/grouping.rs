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
    let mut min_d: Vec<f64> = vec![f64::INFINITY; n];
    let mut next = 0;
    loop {
        centres.push(next);
        min_d[next] = -1.0;
        if centres.len() == m {
            break;
        }
        // One pass: lower the distances with the newest centre and find the farthest particle
        // (strict `>`: ties go to the lowest index; −1 never beats an unchosen particle's ≥ 0).
        let c = points[next];
        let mut best = usize::MAX;
        let mut best_d = -1.0;
        for (i, d) in min_d.iter_mut().enumerate() {
            if *d > 0.0 {
                let dc = plane_dist2(points[i], c);
                if dc < *d {
                    *d = dc;
                }
            }
            if *d > best_d {
                best_d = *d;
                best = i;
            }
        }
        if best == usize::MAX {
            break; // only reachable with NaN coordinates, which validation excludes
        }
        next = best;
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
    let m = k.min(n);
    // The m smallest (distance, index) keys, kept sorted by insertion: k is small, so this beats
    // a selection plus sort. Indices arrive in increasing order, so among equal distances the
    // earlier index already sits first and a strict `<` keeps it there.
    scratch.clear();
    scratch.push((-1.0, centre as u32)); // the centre sorts first even with a coincident particle
    for (i, &p) in points.iter().enumerate() {
        if i == centre {
            continue;
        }
        let d = plane_dist2(p, c);
        if scratch.len() == m {
            if d >= scratch[m - 1].0 {
                continue;
            }
            scratch.pop();
        }
        let mut pos = scratch.len();
        while pos > 0 && d < scratch[pos - 1].0 {
            pos -= 1;
        }
        scratch.insert(pos, (d, i as u32));
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::PI;

    #[test]
    fn ties_go_to_the_lower_index() {
        // Particle 3 coincides with the centre; 1, 2, 4 are all at distance 1; 5 at distance 2.
        let pts = [[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 0.0], [-1.0, 0.0], [2.0, 0.0]];
        assert_eq!(nearest_neighbours(&pts, 0, 4), vec![0, 3, 1, 2]);
        // Centre 3 sits on particle 0: the centre itself still comes first.
        assert_eq!(nearest_neighbours(&pts, 3, 3), vec![3, 0, 1]);
        // Fewer particles than k: the sorted list repeats.
        assert_eq!(nearest_neighbours(&pts[..3], 2, 7), vec![2, 0, 1, 2, 0, 1, 2]);
        // FPS from 0: 5 is farthest (d² = 4); then 1, 2 and 4 all tie at d² = 1 → 1; then 2
        // and 4 still tie at 1 → 2.
        assert_eq!(farthest_point_sampling(&pts, 4), vec![0, 5, 1, 2]);
        // Coincident particles: all six are chosen, each once.
        let mut all = farthest_point_sampling(&pts, 10);
        all.sort_unstable();
        assert_eq!(all, vec![0, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn distances_wrap_in_phi() {
        // dphi = 3.1 and −3.1 are 2π − 6.2 ≈ 0.083 apart, closer than 0.5.
        let pts = [[0.0, 3.1], [0.0, 2.6], [0.0, -3.1]];
        assert_eq!(nearest_neighbours(&pts, 0, 3), vec![0, 2, 1]);
        assert!((plane_dist2(pts[0], pts[2]) - (2.0 * PI - 6.2).powi(2)).abs() < 1e-12);
    }

    #[test]
    fn sequencer_follows_nearest_unvisited() {
        let pts = [[0.0, 0.0], [3.0, 0.0], [1.0, 0.0], [2.0, 0.0], [-1.5, 0.0]];
        // From 0: nearest is 2 (1.0), then 3, then 1, then 4 (far left).
        assert_eq!(sequence(&pts, &[0, 1, 2, 3, 4]), vec![0, 2, 3, 1, 4]);
        // Ties: from 0, centres 1 and 2 (positions ±1) are equally near → lower FPS index first.
        let pts = [[0.0, 0.0], [1.0, 0.0], [-1.0, 0.0]];
        assert_eq!(sequence(&pts, &[0, 2, 1]), vec![0, 1, 2]);
    }
}
